"""Models from a Hugging Face / sentence-transformers folder or hub id, as bi- or cross-encoders.

What `export.py format=hf|sentence-transformers` writes loads back with the same scores, and so
does a sentence-transformers model or CrossEncoder from the hub: a bi-encoder folder becomes our
BiEncoder with the pooling and length it declares; a sequence classifier with one label becomes
our CrossEncoder (the inverse of `export.sequence_classifier`). Nothing runs remote code.
"""
from __future__ import annotations

from pathlib import Path
from collections.abc import Callable
from typing import Any

from sts.io.checkpoint import ENCODER_TYPES
from sts.core.calibration import Calibration, stored
from sts.errors import STSError
from sts.core import BiEncoder, CrossEncoder, PairModel
from sts.io.encoders import check_source, check_tokenizer, check_weights_fit, load_pretrained, read_json_object, refuse_missing, sentence_transformers_pooling

# written by export.py into every folder it makes (threshold and the metrics of the model file)
MARKER = ".sts-export.json"
DEFAULT_MAX_LENGTH = 128


def is_cross_encoder(folder: Path, config: Any) -> bool:
    """A sentence-transformers CrossEncoder or a transformers sequence classifier."""
    st = folder / "config_sentence_transformers.json"
    if st.is_file() and read_json_object(st).get("model_type") == "CrossEncoder":
        return True
    return any(a.endswith("ForSequenceClassification") for a in (getattr(config, "architectures", None) or []))


def _declared_length(folder: Path, tokenizer: Any) -> int:
    """sentence_bert_config's max_seq_length, else the tokenizer's limit, capped at 512."""
    bert_config = folder / "sentence_bert_config.json"
    declared = read_json_object(bert_config).get("max_seq_length") if bert_config.is_file() else None
    if not isinstance(declared, int) or declared < 1:
        declared = getattr(tokenizer, "model_max_length", DEFAULT_MAX_LENGTH)
    return int(min(declared, 512)) if isinstance(declared, int) and declared > 0 else DEFAULT_MAX_LENGTH


def _cross_encoder(name: str, config: Any, max_length: int | None) -> CrossEncoder:
    """The exported classifier for scoring: its head must be in the weights, like every layer."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    check_weights_fit(name, config, AutoModelForSequenceClassification)
    try:
        classifier, info = AutoModelForSequenceClassification.from_pretrained(name, config=config, trust_remote_code=False, output_loading_info=True)
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise STSError(f"{name}: cannot load the sequence classifier ({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None
    refuse_missing(name, info)
    check_tokenizer(tokenizer, name)
    if classifier.config.num_labels != 1:
        raise STSError(f"{name}: a sequence classifier with {classifier.config.num_labels} labels; a similarity cross-encoder has one (a score)")
    encoder = getattr(classifier, classifier.base_model_prefix)
    state = classifier.state_dict()
    prefix = classifier.base_model_prefix
    if f"{prefix}.pooler.dense.weight" in state and "classifier.weight" in state:
        head = {"dense": f"{prefix}.pooler.dense", "classifier": "classifier"}
    elif "classifier.dense.weight" in state and "classifier.out_proj.weight" in state:
        head = {"dense": "classifier.dense", "classifier": "classifier.out_proj"}
    else:
        raise STSError(f"{name}: its {type(classifier).__name__} head is not dense + tanh + linear like our cross-encoder's")
    module = CrossEncoder(encoder=encoder, tokenizer=tokenizer, max_length=max_length or _declared_length(Path(name), tokenizer), pooling="cls")
    for part, source in head.items():
        getattr(module, part).load_state_dict({k.removeprefix(source + "."): v for k, v in state.items() if k.startswith(source + ".")})
    return module


def _pooling(name: str, cross: bool, pooling: str | None) -> str:
    """How the folder's model pools: a sequence classifier reads [CLS] (another pooling= is
    refused); a bi-encoder pools as asked, else as its sentence-transformers files say, else mean."""
    if cross:
        if pooling not in (None, "cls"):
            raise STSError(f"pooling={pooling}: a sequence-classifier folder reads the [CLS] state")
        return "cls"
    return pooling or sentence_transformers_pooling(name) or "mean"


def _build(name: str, folder: Path, config: Any, pooling: str | None, max_length: int | None) -> PairModel:
    if is_cross_encoder(folder, config):
        _pooling(name, True, pooling)
        return _cross_encoder(name, config, max_length)
    tokenizer, encoder = load_pretrained(name)
    return BiEncoder(encoder=encoder, tokenizer=tokenizer, max_length=max_length or _declared_length(folder, tokenizer), pooling=_pooling(name, False, pooling))


def _config(name: str) -> Any:
    """The folder's (or hub id's) encoder config, after the checks every reader makes."""
    from transformers import AutoConfig

    folder = Path(name)
    if folder.is_dir() and (folder / "sts_onnx.json").is_file() and not (folder / "config.json").is_file():
        raise STSError(f"{folder}: an ONNX export, which holds a graph and no transformers weights; sts.load(folder) scores it (docs/export.md)")
    if folder.is_dir() and not (folder / "config.json").is_file():
        raise STSError(f"{folder}: a folder without config.json, so not a model folder (give a model.pt, a .ckpt, or a folder export.py wrote)")
    check_source(name)
    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise STSError(
            f"{name}: not a model file, a model folder or a Hugging Face id that can be fetched (offline?) [{type(e).__name__}: {str(e).splitlines()[0][:160]}]"
        ) from None
    if config.model_type not in ENCODER_TYPES:
        raise STSError(f"{name}: encoder type {config.model_type!r} is not one we build on ({', '.join(sorted(ENCODER_TYPES))})")
    return config


def calibration(folder: Path) -> tuple[float, dict[str, Any]]:
    """The threshold and metrics export.py's marker records (else an uncalibrated 0.5)."""
    marker = read_json_object(folder / MARKER) if (folder / MARKER).is_file() else {}
    threshold = marker.get("threshold")
    calibrated = isinstance(threshold, (int, float)) and 0.0 <= float(threshold) <= 1.0
    metrics = marker.get("metrics") if isinstance(marker.get("metrics"), dict) else {}
    info = {"threshold_source": "export" if calibrated else "default 0.5 (not calibrated: pass threshold= or evaluate on dev)", "metrics": metrics}
    return (float(threshold) if calibrated else 0.5), info


def probability(folder: Path) -> Calibration | None:
    """The probability calibration export.py's marker records (checked as a model file's is), or None."""
    marker = read_json_object(folder / MARKER) if (folder / MARKER).is_file() else {}
    return stored(marker.get("calibration"), f"{folder / MARKER}: field calibration")


def _failing(name: str, build: Callable[[], Any]) -> Any:
    try:
        return build()
    except STSError:
        raise
    except Exception as e:  # transformers and tokenizers raise many types for a broken folder
        raise STSError(f"{name}: cannot load the model in it ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})") from None


def load(name: str, pooling: str | None = None, max_length: int | None = None) -> tuple[PairModel, dict[str, Any]]:
    """The folder's (or hub id's) model and what it says about itself: threshold and metrics
    from export.py's marker when there is one (else an uncalibrated 0.5)."""
    config = _config(name)
    module = _failing(name, lambda: _build(name, Path(name), config, pooling, max_length))
    module.threshold, info = calibration(Path(name))
    module.calibration = probability(Path(name))
    return module.eval(), info


def describe(name: str, pooling: str | None = None, max_length: int | None = None) -> tuple[str, Any, Any, int, str, float, dict[str, Any]]:
    """(architecture, tokenizer, encoder config, max_length, pooling, threshold, info) of the
    folder's (or hub id's) model, read as `load` reads them, without building the network."""
    from transformers import AutoTokenizer

    config = _config(name)
    folder = Path(name)
    cross = is_cross_encoder(folder, config)
    pooled = _pooling(name, cross, pooling)
    tokenizer = _failing(name, lambda: check_tokenizer(AutoTokenizer.from_pretrained(name, trust_remote_code=False), name))
    length = max_length or _declared_length(folder, tokenizer)
    threshold, info = calibration(folder)
    return ("CrossEncoder" if cross else "BiEncoder"), tokenizer, config, length, pooled, threshold, info
