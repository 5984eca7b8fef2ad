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
import random
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from sts import checks
from sts.errors import STSError
from sts.models import ARCHITECTURES, PairModule
from sts.models.encoder import POOLING_MODES, check_tokenizer


def save(module: PairModule, path: str | Path, metrics: dict[str, Any] | None = None) -> Path:
    """Write weights + payload (no optimizer state) through a temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    payload = {"sts": module.payload() | {"metrics": metrics or {}}, "state_dict": state}
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
_COMMON_HPARAMS = {
    "max_length": checks.integer(1, 8192),
    "freeze_encoder": checks.boolean(),
    "encoder_lr": checks.number(0, 1),
    "head_lr": checks.number(0, 1),
    "weight_decay": checks.number(0, 10),
    "warmup_ratio": checks.number(0, 1),
    "layerwise_lr_decay": checks.number(0, 1, lo_open=True),
    "pooling": checks.choice(*POOLING_MODES),
    "head_dropout": checks.number(0, 1, hi_open=True),
    "threshold_objective": checks.threshold_objective(),
}
HPARAMS = {
    "BiEncoder": _COMMON_HPARAMS | {"head_hidden": checks.integer(1, 65536)},
    "CrossEncoder": _COMMON_HPARAMS | {"both_orders": checks.boolean(), "same_token_types": checks.boolean()},
}
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


def _field(path: Path, name: str, value: Any, rule: checks.Rule) -> Any:
    try:
        return rule(value)
    except checks.Invalid as e:
        raise STSError(f"{path}: checkpoint field {name}={checks.shown(value)} {e}") from None


def _check_payload(path: Path, payload: dict[str, Any]) -> None:
    """Types, ranges and names of every payload field, before anything is built from them."""
    architecture = payload.get("architecture")
    if not isinstance(architecture, str) or architecture not in ARCHITECTURES:
        raise STSError(f"{path}: unknown architecture {checks.shown(architecture)} in checkpoint (known: {sorted(ARCHITECTURES)})")
    hparams = payload.get("hparams")
    if not isinstance(hparams, dict):
        raise STSError(f"{path}: checkpoint field sts.hparams is not a mapping")
    allowed = HPARAMS[architecture]
    for key, value in hparams.items():
        if key not in allowed:
            raise STSError(f"{path}: checkpoint field sts.hparams has an unknown key {checks.shown(key)} (known for a {architecture}: {sorted(allowed)})")
        hparams[key] = _field(path, f"sts.hparams.{key}", value, allowed[key])
    config = payload.get("encoder_config")
    if not isinstance(config, dict):
        raise STSError(f"{path}: checkpoint field sts.encoder_config is not a mapping")
    _field(path, "sts.encoder_config", config, checks.plain_data)
    _field(path, "sts.encoder_config.model_type", config.get("model_type"), checks.choice(*sorted(ENCODER_TYPES)))
    try:
        checks.model_config(config)
    except checks.Invalid as e:
        raise STSError(f"{path}: checkpoint field sts.encoder_config {e}") from None
    for key, rule in checks.ENCODER_SIZES.items():
        if key in config:
            config[key] = _field(path, f"sts.encoder_config.{key}", config[key], rule)
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
    found = checkpoint["sts"]["architecture"]
    if architecture is not None and found != architecture:
        raise STSError(f"{path}: checkpoint is a {found}, but {architecture} was requested")
    return checkpoint


def _shapes(state_dict: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state_dict.items() if isinstance(v, torch.Tensor)}


def check_weights(path: str | Path, module: PairModule, state_dict: dict[str, Any]) -> None:
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


def build(payload: dict[str, Any], path: str | Path = "checkpoint", tokenizer: Any = None) -> PairModule:
    """An untrained module with the architecture, encoder and tokenizer a checked payload
    describes (`path` names the payload's file in errors). Under `with torch.device("meta")`
    it allocates nothing, which is how `load` compares shapes before building for real."""
    from transformers import AutoConfig, AutoModel

    architecture = payload["architecture"]
    tokenizer = tokenizer if tokenizer is not None else _tokenizer(payload, path)
    try:
        encoder_config = dict(payload["encoder_config"])
        config = AutoConfig.for_model(encoder_config.pop("model_type"), **encoder_config)
        encoder = AutoModel.from_config(config, trust_remote_code=False)
        module = ARCHITECTURES[architecture](encoder=encoder, tokenizer=tokenizer, loss=None, **payload["hparams"])
    except Exception as e:  # transformers validates configs with its own error types; any is the payload's fault
        raise STSError(f"{path}: the payload does not describe a valid {architecture} ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})") from None
    vocab = getattr(encoder.config, "vocab_size", None)
    if vocab is not None and len(tokenizer) > vocab:
        raise STSError(f"{path}: the tokenizer has {len(tokenizer)} tokens but the encoder's vocabulary only {vocab}")
    module.threshold = float(payload.get("threshold", 0.5))
    return module


def check_resumable(path: str | Path, module: PairModule) -> str:
    """Vet a Lightning checkpoint before `Trainer.fit(ckpt_path=...)` loads it: plain data only,
    written by a training run (not a model.pt), and the architecture and tensor shapes of the
    configured model."""
    checkpoint = read(path, type(module).__name__)
    missing = [k for k in ("epoch", "global_step", "loops", "optimizer_states", "lr_schedulers", "callbacks") if k not in checkpoint]
    if missing:
        raise STSError(f"{path}: not a Lightning training checkpoint (no {', '.join(missing)}): a model.pt cannot be resumed; resume from <run dir>/checkpoints/last.ckpt with ckpt_path=last")
    for key in ("epoch", "global_step"):
        _field(Path(path), key, checkpoint[key], checks.integer(0))
    for key, kind in (("loops", dict), ("optimizer_states", list), ("lr_schedulers", list), ("callbacks", dict)):
        if not isinstance(checkpoint[key], kind):
            raise STSError(f"{path}: checkpoint field {key} is not a {kind.__name__}")
    path = Path(path)
    _field(path, "loops", checkpoint["loops"], lambda v: checks.plain_data(v, leaf=_is_count))
    _field(path, "callbacks", checkpoint["callbacks"], lambda v: checks.plain_data(v, leaf=_is_plain_or_tensor))
    _field(path, "lr_schedulers", checkpoint["lr_schedulers"], checks.plain_data)
    _check_optimizer_state(path, checkpoint["optimizer_states"], checkpoint["lr_schedulers"], module)
    _check_callbacks(path, checkpoint["callbacks"])
    check_weights(path, module, checkpoint["state_dict"])
    return str(path)


def _is_count(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, int) and value >= 0)


def _is_plain_or_tensor(value: Any) -> bool:
    return value is None or isinstance(value, (str, bool, int, float)) or (isinstance(value, torch.Tensor) and value.numel() <= 2**20)


def _check_optimizer_state(path: Path, optimizers: list[Any], schedulers: list[Any], module: PairModule) -> None:
    """One AdamW state whose parameter groups and moment shapes are those of the configured
    model, and one scheduler with a learning rate per group, so restoring cannot fail (or
    allocate) deep inside torch."""
    groups = module.param_groups()
    params = [p for g in groups for p in g["params"]]
    if len(optimizers) != 1 or not isinstance(optimizers[0], dict):
        raise STSError(f"{path}: checkpoint field optimizer_states does not hold one optimizer state")
    state, saved_groups = optimizers[0].get("state"), optimizers[0].get("param_groups")
    if not isinstance(state, dict) or not isinstance(saved_groups, list) or not all(isinstance(g, dict) for g in saved_groups):
        raise STSError(f"{path}: checkpoint field optimizer_states[0] is not an optimizer state (state, param_groups)")
    saved_counts = [len(ids) if isinstance(ids := g.get("params"), list) and all(type(i) is int for i in ids) else -1 for g in saved_groups]
    if saved_counts != [len(g["params"]) for g in groups]:
        raise STSError(f"{path}: checkpoint field optimizer_states[0].param_groups does not match the configured model's parameter groups")
    for group in saved_groups:
        _field(path, "optimizer_states[0].param_groups", group, checks.plain_data)
        for key in ("lr", "initial_lr", "eps", "weight_decay"):
            if key in group:
                _field(path, f"optimizer_states[0].param_groups.{key}", group[key], checks.number(0, 10))
        betas = group.get("betas", (0.9, 0.999))
        if not isinstance(betas, (list, tuple)) or len(betas) != 2:
            raise STSError(f"{path}: checkpoint field optimizer_states[0].param_groups.betas is not a pair")
        for beta in betas:
            _field(path, "optimizer_states[0].param_groups.betas", beta, checks.number(0, 1, hi_open=True))
    for index, moments in state.items():
        if not isinstance(index, int) or not 0 <= index < len(params) or not isinstance(moments, dict):
            raise STSError(f"{path}: checkpoint field optimizer_states[0].state has an entry {checks.shown(index)} that is no parameter of the model")
        for name, value in moments.items():
            tensor = isinstance(value, torch.Tensor)
            if not tensor and not isinstance(value, (int, float)) or tensor and value.dim() > 0 and value.shape != params[index].shape:
                raise STSError(f"{path}: checkpoint field optimizer_states[0].state[{index}][{checks.shown(name)}] does not fit parameter {index}")
            if tensor and value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise STSError(f"{path}: checkpoint field optimizer_states[0].state[{index}][{name!r}] holds NaN or infinite values")
    if len(schedulers) != 1 or not isinstance(schedulers[0], dict):
        raise STSError(f"{path}: checkpoint field lr_schedulers does not hold one scheduler state")
    for key in ("base_lrs", "_last_lr"):
        values = schedulers[0].get(key, [])
        if key in schedulers[0] and (not isinstance(values, list) or len(values) != len(groups) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
            raise STSError(f"{path}: checkpoint field lr_schedulers[0].{key} is not one learning rate per parameter group")
    for key in ("last_epoch", "_step_count"):
        if key in schedulers[0]:
            _field(path, f"lr_schedulers[0].{key}", schedulers[0][key], checks.integer(-1))


# counters and scores that Lightning's callbacks restore and then do arithmetic with
_CALLBACK_COUNTS = ("wait_count", "stopped_epoch", "patience")
_CALLBACK_SCORES = ("best_score", "best_model_score", "kth_value", "current_score")


def _check_callbacks(path: Path, callbacks: dict[str, Any]) -> None:
    """Counters are counts and scores scalar tensors; and a ModelCheckpoint's state names files
    it will later read or delete (the best, the k best, the last): each must lie directly in the
    folder that state records, so a planted "/home/me/thesis.tex" or "checkpoints/../../x" is
    refused instead of removed on resume."""
    for name, state in callbacks.items():
        if not isinstance(state, dict):
            raise STSError(f"{path}: checkpoint field callbacks[{checks.shown(name, 40)}] is not a mapping")
        for key in _CALLBACK_COUNTS:
            if key in state:
                _field(path, f"callbacks[{checks.shown(name, 40)}].{key}", state[key], checks.integer(0))
        optional = {"best_model_score", "current_score"}  # None until a first score exists
        scores = [state[k] for k in _CALLBACK_SCORES if k in state and not (k in optional and state[k] is None)]
        scores += list(state["best_k_models"].values()) if isinstance(state.get("best_k_models"), dict) else []
        if any(not (isinstance(v, torch.Tensor) and v.numel() == 1 and v.is_floating_point()) for v in scores):
            raise STSError(f"{path}: checkpoint field callbacks[{checks.shown(name, 40)}] holds a score that is not a scalar tensor")
        if "dirpath" not in state:
            continue
        folder = state["dirpath"]
        if not isinstance(folder, str):
            raise STSError(f"{path}: checkpoint field callbacks[{checks.shown(name)}].dirpath is not a path")
        named = [state.get(k) for k in ("best_model_path", "kth_best_model_path", "last_model_path")]
        best_k = state.get("best_k_models") or {}
        if not isinstance(best_k, dict):
            raise STSError(f"{path}: checkpoint field callbacks[{checks.shown(name)}].best_k_models is not a mapping")
        for file in [*named, *best_k]:
            if file in (None, ""):
                continue
            if not isinstance(file, str) or ".." in Path(file).parts or Path(file).resolve().parent != Path(folder).resolve():
                raise STSError(f"{path}: checkpoint field callbacks[{checks.shown(name, 40)}] names {checks.shown(file)}, outside its checkpoint folder {folder!r}")


class RandomState(Callback):
    """Keeps the random generators' state in Lightning checkpoints, so a resumed run draws the
    same shuffles and dropout masks as an uninterrupted one (plain tensors and ints only).

    On a restart Lightning creates the train iterator twice, one seed draw more than an
    uninterrupted run; the state reached after the first (replayed) one is put back before the
    first batch."""

    def __init__(self) -> None:
        self._restored = False
        self._first_batch_state: torch.Tensor | None = None

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": list(np.random.get_state())}
        state["numpy"][1] = torch.from_numpy(state["numpy"][1].astype(np.int64))
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        try:
            torch.set_rng_state(state_dict["torch"])
            random.setstate(tuple(state_dict["python"]))
            kind, keys, *rest = state_dict["numpy"]
            np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
            if "cuda" in state_dict and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state_dict["cuda"])
        except Exception as e:  # any malformed field; the state is data from a file
            raise STSError(f"checkpoint: the random generators' state it holds is damaged ({type(e).__name__}: {str(e)[:120]})") from None
        self._restored = True

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self._restored:
            self._first_batch_state, self._restored = torch.get_rng_state(), False

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self._first_batch_state is not None:
            torch.set_rng_state(self._first_batch_state)
            self._first_batch_state = None


class InterruptCheckpoint(Callback):
    """On SIGTERM (a cluster's pre-emption, `kill`), write `dirpath/last.ckpt` before the run
    exits, so `ckpt_path=last` continues from where it stopped instead of the last validation.
    Lightning raises SIGTERMException only at a batch boundary, so the state is consistent;
    other exceptions (Ctrl-C anywhere, errors) keep the last validation's checkpoint."""

    def __init__(self, dirpath: str | Path) -> None:
        self.dirpath = Path(dirpath)
        self.written: Path | None = None  # what this run wrote, so its clean-up removes only that

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(exception, SIGTERMException) and trainer.training:
            self.written = self.dirpath / "last.ckpt"
            trainer.save_checkpoint(self.written)


def load(path: str | Path, architecture: str | None = None) -> PairModule:
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
    _smoke_test(module.eval(), path)
    return module


def _smoke_test(module: PairModule, path: str | Path) -> None:
    """Score one tiny pair: a config field that builds but cannot run (a text `layer_norm_eps`,
    an odd activation) fails here, in one line, not in the middle of a user's file."""
    try:
        scores = module.score_texts(["a cat"], ["a dog"])
    except Exception as e:  # whatever the payload broke
        raise STSError(f"{path}: the model it describes cannot score a sentence pair ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})") from None
    if not np.isfinite(scores).all():
        raise STSError(f"{path}: the model it describes scores NaN or infinity")
