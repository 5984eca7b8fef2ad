"""Self-contained, safe checkpoints.

A model file carries architecture, hyper-parameters, the encoder's config, the tokenizer's
files and the decision threshold beside the weights, all as plain types and tensors, so
`predict.py` needs nothing but the file and loading it never unpickles code
(`torch.load(weights_only=True)`). Lightning's own `.ckpt` files written during training
carry the same payload and load the same way.
"""
from __future__ import annotations

import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sts.core import checks
from sts.errors import STSError
from sts.core import ARCHITECTURES, PairModel
from sts.core import hparams as hparams_rules
from sts.core.calibration import Calibration
from sts.core.calibration import rule as calibration_rule
from sts.io.encoders import check_tokenizer


def save(module: PairModel, path: str | Path, metrics: dict[str, Any] | None = None, training: dict[str, Any] | None = None) -> Path:
    """Write weights + payload (no optimizer state) through a temporary file; `training`: how
    the model was trained (sts.core.hparams.TRAINING), recorded beside its architecture. A model
    loaded from an ONNX export has no torch weights to write: refused in one line."""
    from sts.core.backends import exported_graph

    graph = exported_graph(module)
    if graph is not None:
        raise STSError(f"{path}: the model was loaded from the ONNX graph {graph}, which has no torch weights to save; save the model.pt it was exported from")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    payload = {"sts": module.payload(training) | {"metrics": metrics or {}}, "state_dict": state}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# Only what a tokenizer's save_pretrained writes as text; anything else (a path, "../x", a .pth
# that Python would run at start-up) is refused before a byte is written.
TOKENIZER_FILES = frozenset(
    {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja"}
)
MAX_TOKENIZER_BYTES = 64 * 2**20
# encoder families the bi- and cross-encoder are built on (AutoModel, no remote code)
ENCODER_TYPES = frozenset({"bert", "roberta", "xlm-roberta", "camembert", "mpnet", "distilbert", "electra", "albert", "deberta", "deberta-v2", "modernbert"})
MAX_TENSORS = 20_000


def _check_zip(path: Path) -> None:
    """torch.save writes an uncompressed zip; a compressed or inflated entry is not ours (and
    could be a zip bomb)."""
    if not zipfile.is_zipfile(path):  # anything else is not ours or is cut short
        raise STSError(f"{path}: not a readable checkpoint (truncated or not a torch file)")
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise STSError(f"{path}: not a readable checkpoint (truncated or not a torch file): {e}") from None
    if any(e.compress_type != zipfile.ZIP_STORED for e in entries) or sum(e.file_size for e in entries) > path.stat().st_size:
        raise STSError(f"{path}: not a torch checkpoint (its archive holds compressed entries, which torch.save never writes)")


def _field(path: Path, name: str, value: Any, rule: checks.Rule, kind: str = "checkpoint field") -> Any:
    try:
        return rule(value)
    except checks.Invalid as e:
        raise STSError(f"{path}: {kind} {name}={checks.shown(value)} {e}") from None


def check_encoder_config(path: Path, config: Any, name: str = "sts.encoder_config", kind: str = "checkpoint field") -> dict[str, Any]:
    """An encoder config carried as plain data (a model file's payload, an ONNX export's
    metadata): a mapping of an encoder type we build on, loading no code, sizes in range. Sizes
    are normalised in place; one line naming the file and field when refused."""
    if not isinstance(config, dict):
        raise STSError(f"{path}: {kind} {name} is not a mapping")
    _field(path, name, config, checks.plain_data, kind)
    _field(path, f"{name}.model_type", config.get("model_type"), checks.choice(*sorted(ENCODER_TYPES)), kind)
    try:
        checks.model_config(config)
    except checks.Invalid as e:
        raise STSError(f"{path}: {kind} {name} {e}") from None
    for key, rule in checks.ENCODER_SIZES.items():
        if key in config:
            config[key] = _field(path, f"{name}.{key}", config[key], rule, kind)
    return config


def _check_payload(path: Path, payload: dict[str, Any]) -> None:
    """Types, ranges and names of every payload field, before anything is built from them."""
    architecture = payload.get("architecture")
    if not isinstance(architecture, str) or architecture not in ARCHITECTURES:
        raise STSError(f"{path}: unknown architecture {checks.shown(architecture)} in checkpoint (known: {sorted(ARCHITECTURES)})")
    hparams = payload.get("hparams")
    if not isinstance(hparams, dict):
        raise STSError(f"{path}: checkpoint field sts.hparams is not a mapping")
    allowed = hparams_rules.RECORDED[architecture]
    for key, value in hparams.items():
        if key not in allowed:
            raise STSError(f"{path}: checkpoint field sts.hparams has an unknown key {checks.shown(key)} (known for a {architecture}: {sorted(allowed)})")
        hparams[key] = _field(path, f"sts.hparams.{key}", value, allowed[key])
    config = check_encoder_config(path, payload.get("encoder_config"))
    max_length, positions = hparams.get("max_length", 128), config.get("max_position_embeddings")
    if positions is not None and max_length > positions:
        raise STSError(f"{path}: checkpoint field sts.hparams.max_length={max_length} exceeds the encoder's max_position_embeddings={positions}")
    files = payload.get("tokenizer_files")
    if not isinstance(files, dict) or not files:
        raise STSError(f"{path}: checkpoint field sts.tokenizer_files is not a non-empty mapping of file name to text")
    for name, content in files.items():
        if name not in TOKENIZER_FILES:
            raise STSError(f"{path}: checkpoint field sts.tokenizer_files names {checks.shown(name)}, which is not a tokenizer file (allowed: {sorted(TOKENIZER_FILES)})")
        if not isinstance(content, str):
            raise STSError(f"{path}: checkpoint field sts.tokenizer_files[{name!r}] is not text")
    if sum(len(c) for c in files.values()) > MAX_TOKENIZER_BYTES:
        raise STSError(f"{path}: checkpoint field sts.tokenizer_files holds more than {MAX_TOKENIZER_BYTES // 2**20} MiB")
    if "tokenizer_config.json" in files:
        try:
            tokenizer_config = json.loads(files["tokenizer_config.json"])
        except json.JSONDecodeError:
            raise STSError(f"{path}: checkpoint field sts.tokenizer_files['tokenizer_config.json'] is not valid JSON") from None
        try:
            checks.tokenizer_config(tokenizer_config)
        except checks.Invalid as e:
            raise STSError(f"{path}: checkpoint field sts.tokenizer_files['tokenizer_config.json'] {e}") from None
    payload["threshold"] = _field(path, "sts.threshold", payload.get("threshold", 0.5), checks.number(0, 1))
    calibration = payload.get("calibration")
    payload["calibration"] = None if calibration is None else _field(path, "sts.calibration", calibration, calibration_rule())
    metrics = payload.get("metrics", {})
    if not isinstance(metrics, dict):
        raise STSError(f"{path}: checkpoint field sts.metrics is not a mapping")
    _field(path, "sts.metrics", metrics, checks.plain_data)


def _check_state_dict(path: Path, state_dict: Any) -> None:
    if not isinstance(state_dict, dict) or not state_dict:
        raise STSError(f"{path}: checkpoint field state_dict is not a non-empty mapping of tensor names to tensors")
    if len(state_dict) > MAX_TENSORS:
        raise STSError(f"{path}: checkpoint field state_dict holds {len(state_dict)} entries (at most {MAX_TENSORS})")
    for name, tensor in state_dict.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise STSError(f"{path}: checkpoint field state_dict[{checks.shown(name)}] is a {type(tensor).__name__}, not a tensor")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise STSError(f"{path}: checkpoint field state_dict[{name!r}] holds NaN or infinite weights")


def read(path: str | Path, architecture: str | None = None) -> dict[str, Any]:
    """The checkpoint's contents, refusing anything that is not a plain-data STS checkpoint
    (of `architecture`, when given) with every payload field checked."""
    path = Path(path)
    if not path.is_file():
        kind = " (it is a directory)" if path.is_dir() else " (it is a device or pipe, not a file)" if path.exists() else ""
        raise STSError(f"{path}: checkpoint not found{kind}")
    _check_zip(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = next((line.strip() for line in str(e).splitlines() if "Unsupported" in line), str(e).splitlines()[0])
        raise STSError(f"{path}: refused to load: the checkpoint holds objects other than plain data and tensors, which could run code ({reason[:160]})") from None
    except Exception as e:  # torch raises many types for corrupt files (RuntimeError, KeyError, EOFError...)
        raise STSError(f"{path}: not a readable checkpoint (truncated or not a torch file): {str(e).splitlines()[0][:160] if str(e) else type(e).__name__}") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("sts"), dict) or "state_dict" not in checkpoint:
        raise STSError(f"{path}: not an STS checkpoint (no model payload); use a model.pt or .ckpt written by train.py")
    _check_payload(path, checkpoint["sts"])
    _check_state_dict(path, checkpoint["state_dict"])
    checkpoint["state_dict"] = model_state(checkpoint["state_dict"])
    found = checkpoint["sts"]["architecture"]
    if architecture is not None and found != architecture:
        raise STSError(f"{path}: checkpoint is a {found}, but {architecture} was requested")
    return checkpoint


# where a training run's Lightning checkpoint keeps the model's tensors (sts.training.task.PairTask.model)
TASK_PREFIX = "model."


def model_state(state_dict: dict[str, Any]) -> dict[str, Any]:
    """The model's tensors under the names the model itself uses: a Lightning checkpoint written
    by a training run holds them under `model.`, a model.pt (and a .ckpt of earlier versions) as they are."""
    if all(k.startswith(TASK_PREFIX) for k in state_dict):
        return {k[len(TASK_PREFIX):]: v for k, v in state_dict.items()}
    return state_dict


def _shapes(state_dict: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state_dict.items() if isinstance(v, torch.Tensor)}


def check_weights(path: str | Path, module: PairModel, state_dict: dict[str, Any]) -> None:
    """One clear line when a checkpoint's tensors do not fit `module` (other encoder size,
    other head), instead of torch's multi-line size-mismatch report."""
    expected, found = _shapes(module.state_dict()), _shapes(state_dict)
    if expected != found:
        differing = sorted(k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k))
        raise STSError(
            f"{path}: weights do not match the {type(module).__name__} they are loaded into: {len(differing)} tensor(s) differ in name or shape, e.g. {differing[0]!r}"
        )


def _tokenizer(payload: dict[str, Any], path: str | Path) -> Any:
    """The tokenizer from its files, written into a private temporary folder under the names
    `_check_payload` allowed (plain file names, nothing else)."""
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        for name, content in payload["tokenizer_files"].items():
            (Path(tmp) / name).write_text(content, encoding="utf-8")
        try:
            tokenizer = AutoTokenizer.from_pretrained(tmp, trust_remote_code=False)
        except Exception as e:  # tokenizers raises plain Exceptions from Rust for malformed files
            raise STSError(f"{path}: checkpoint field sts.tokenizer_files does not make a tokenizer ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})") from None
    return check_tokenizer(tokenizer, f"{path}: checkpoint field sts.tokenizer_files")


def build(payload: dict[str, Any], path: str | Path = "checkpoint", tokenizer: Any = None) -> PairModel:
    """An untrained module with the architecture, encoder and tokenizer a checked payload
    describes (`path` names the payload's file in errors). Under `with torch.device("meta")`
    it allocates nothing, which is how `load` compares shapes before building for real."""
    from transformers import AutoModel

    architecture = payload["architecture"]
    tokenizer = tokenizer if tokenizer is not None else _tokenizer(payload, path)
    config = encoder_config(payload, path)
    try:
        encoder = AutoModel.from_config(config, trust_remote_code=False)
        module = ARCHITECTURES[architecture](encoder=encoder, tokenizer=tokenizer, **hparams_rules.split(payload["hparams"])[0])
    except Exception as e:  # transformers validates configs with its own error types; any is the payload's fault
        raise STSError(f"{path}: the payload does not describe a valid {architecture} ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})") from None
    check_vocabulary(path, tokenizer, encoder.config)
    module.threshold = float(payload.get("threshold", 0.5))
    module.calibration = Calibration.from_record(payload["calibration"]) if payload.get("calibration") else None
    return module


def encoder_config(payload: dict[str, Any], path: str | Path) -> Any:
    """The encoder's transformers config from a checked payload."""
    from transformers import AutoConfig

    try:
        fields = dict(payload["encoder_config"])
        return AutoConfig.for_model(fields.pop("model_type"), **fields)
    except Exception as e:  # transformers validates configs with its own error types
        raise STSError(f"{path}: the payload does not describe a valid {payload['architecture']} ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})") from None


def check_vocabulary(path: str | Path, tokenizer: Any, config: Any) -> None:
    vocab = getattr(config, "vocab_size", None)
    if vocab is not None and len(tokenizer) > vocab:
        raise STSError(f"{path}: the tokenizer has {len(tokenizer)} tokens but the encoder's vocabulary only {vocab}")


def describe(path: str | Path) -> tuple[dict[str, Any], Any, Any]:
    """(payload, tokenizer, encoder config) of a model file, every field checked as `load` checks
    it, without building the network (sts.api.describe)."""
    payload = read(path)["sts"]
    tokenizer, config = _tokenizer(payload, path), encoder_config(payload, path)
    check_vocabulary(path, tokenizer, config)
    return payload, tokenizer, config


def load(path: str | Path, architecture: str | None = None) -> PairModel:
    """A ready-to-score module from a model.pt or a Lightning .ckpt written by train.py.

    Every field is checked first (`read`), then the module is built on the meta device and its
    shapes compared with the stored tensors, so a payload that declares a huge encoder is refused
    without allocating it; only then is the real module built and filled."""
    checkpoint = read(path, architecture)
    payload = checkpoint["sts"]
    tokenizer = _tokenizer(payload, path)
    with torch.device("meta"):
        check_weights(path, build(payload, path, tokenizer), checkpoint["state_dict"])
    module = build(payload, path, tokenizer)
    module.load_state_dict(checkpoint["state_dict"], strict=True)
    module.checkpoint_metrics = payload.get("metrics", {})
    module.trained_with = hparams_rules.split(payload["hparams"])[1]
    _smoke_test(module.eval(), path)
    return module


def _smoke_test(module: PairModel, path: str | Path) -> None:
    """Score one tiny pair: a config field that builds but cannot run (a text `layer_norm_eps`,
    an odd activation) fails here, in one line, not in the middle of a user's file."""
    try:
        scores = module.score_texts(["a cat"], ["a dog"])
    except Exception as e:  # whatever the payload broke
        raise STSError(f"{path}: the model it describes cannot score a sentence pair ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})") from None
    if not np.isfinite(scores).all():
        raise STSError(f"{path}: the model it describes scores NaN or infinity")
