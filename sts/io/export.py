"""export(): write a model file in a format other tools load.

- `hf`: a transformers folder. Bi-encoder: the encoder (AutoModel) and tokenizer. Cross-encoder:
  AutoModelForSequenceClassification with num_labels=1, our head mapped onto its own (BERT:
  pooler.dense + classifier; RoBERTa-style: classifier.dense + classifier.out_proj).
- `sentence-transformers`: the `hf` folder plus the files sentence-transformers reads: modules
  and pooling for a bi-encoder (SentenceTransformer), the sigmoid for a cross-encoder
  (CrossEncoder). Written in the long-standing layout that every release since 2.x loads.
- `onnx`: model.onnx, the fp32 graph of the model's network pass (token ids -> pooled embeddings,
  or a cross-encoder's logit) that backend=onnx | openvino run, beside the tokenizer and
  sts_onnx.json; `sts.load(folder)` scores with it as the model file does (sts.io.onnx_folder).
- every format: the threshold, probability calibration and metrics of the model file in
  `.sts-export.json`, which `sts.load(folder)` reads back (checked), and README.md, the model card
  the Hugging Face Hub reads (sts.io.model_card), written from the model file's record.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from sts.io import checkpoint, model_card, onnx_folder

from sts.data.tables import check_apart, marker_content
from sts.errors import STSError
from sts.core import CrossEncoder, PairModel
from sts.core.backends import export_graph
# written into every export, so overwrite=true can tell our folder from a user's (never `out=~`),
# and so `sts.load(folder)` finds the threshold and metrics of the model file it came from
from sts.io.pretrained import MARKER

SIGMOID = "torch.nn.modules.activation.Sigmoid"


def save_tokenizer(module: PairModel, folder: Path) -> None:
    """The tokenizer, truncating where the model was trained to (model_max_length)."""
    tokenizer = copy.deepcopy(module.tokenizer)
    tokenizer.model_max_length = module.max_length
    tokenizer.save_pretrained(folder)


def sequence_classifier(module: CrossEncoder) -> nn.Module:
    """A transformers AutoModelForSequenceClassification holding our encoder and head."""
    from transformers import AutoModelForSequenceClassification

    if module.pooling != "cls":
        raise STSError(
            f"cannot export a cross-encoder with pooling={module.pooling!r} as a transformers/sentence-transformers "
            "sequence classifier: their head reads the [CLS] state only (format=onnx keeps our pooling)"
        )
    config = copy.deepcopy(module.encoder.config)
    config.num_labels = 1
    config.architectures = None
    config.sentence_transformers = {"activation_fn": SIGMOID}  # CrossEncoder applies sigmoid, as we do
    model = AutoModelForSequenceClassification.from_config(config)
    prefix = model.base_model_prefix
    keys = set(model.state_dict())
    head = {"dense": module.dense.state_dict(), "classifier": module.classifier.state_dict()}
    if {f"{prefix}.pooler.dense.weight", "classifier.weight"} <= keys:
        names = {"dense": f"{prefix}.pooler.dense", "classifier": "classifier"}
    elif {"classifier.dense.weight", "classifier.out_proj.weight"} <= keys:
        names = {"dense": "classifier.dense", "classifier": "classifier.out_proj"}
    else:
        raise STSError(f"cannot export a cross-encoder on {config.model_type!r}: its sequence-classification head is not dense + tanh + linear like ours")
    state = {f"{prefix}.{k}": v for k, v in module.encoder.state_dict().items()}
    state |= {f"{names[part]}.{k}": v for part, weights in head.items() for k, v in weights.items()}
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise STSError(f"cannot map the cross-encoder onto {type(model).__name__}: missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}")
    return model.eval()


def save_hf(module: PairModel, folder: Path) -> None:
    model = sequence_classifier(module) if isinstance(module, CrossEncoder) else module.encoder
    model.save_pretrained(folder)
    save_tokenizer(module, folder)


def write_json(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2) + "\n")


def save_sentence_transformers(module: PairModel, folder: Path) -> None:
    save_hf(module, folder)
    if isinstance(module, CrossEncoder):
        write_json(folder / "config_sentence_transformers.json", {"model_type": "CrossEncoder", "activation_fn": SIGMOID})
        return
    if module.head is not None:
        warnings.warn("a frozen bi-encoder's MLP head has no sentence-transformers equivalent: the export gives its embeddings, compared by cosine", stacklevel=2)
    write_json(
        folder / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        ],
    )
    write_json(folder / "sentence_bert_config.json", {"max_seq_length": module.max_length, "do_lower_case": False})
    flags = {f"pooling_mode_{m}": module.pooling == name for name, m in (("cls", "cls_token"), ("mean", "mean_tokens"), ("max", "max_tokens"))}
    write_json(folder / "1_Pooling" / "config.json", {"word_embedding_dimension": module.encoder.config.hidden_size, **flags, "pooling_mode_mean_sqrt_len_tokens": False})
    write_json(folder / "config_sentence_transformers.json", {"model_type": "SentenceTransformer", "similarity_fn_name": "cosine"})


def save_onnx(module: PairModel, folder: Path) -> None:
    """The graph the onnx and openvino backends run (`sts.core.backends.export_graph`, fp32),
    the tokenizer, a frozen bi-encoder's head and the metadata `sts.load(folder)` checks and
    scores with (sts.io.onnx_folder)."""
    try:
        import onnx  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError:
        raise STSError("format=onnx needs the onnx extra: pip install 'sts[onnx]' (onnx, onnxscript, onnxruntime)") from None
    inputs = export_graph(module, folder / onnx_folder.GRAPH)
    save_tokenizer(module, folder)
    onnx_folder.save_head(module, folder)
    write_json(folder / onnx_folder.METADATA, onnx_folder.metadata(module, inputs))


WRITERS: dict[str, Callable[[PairModel, Path], None]] = {"sentence-transformers": save_sentence_transformers, "hf": save_hf, "onnx": save_onnx}


def card_info(module: PairModel, ckpt: str | Path) -> dict[str, Any]:
    """What `sts.load(ckpt).info` says about the model file, for its card (how it scores aside)."""
    origin = model_card.file_origin(ckpt, module.checkpoint_metrics, module.trained_with)
    return model_card.model_info(type(module).__name__, module.encoder.config, module.max_length, getattr(module, "pooling", None),
                                 getattr(module, "both_orders", None), module.threshold, "fp32", "torch", origin, module.calibration)


def is_export(folder: Path) -> bool:
    """Whether `folder` holds a marker as export() writes it (format, architecture, threshold):
    an empty or foreign file of that name does not make a user's folder ours to replace."""
    marker = marker_content(folder / MARKER)
    return (
        marker is not None
        and marker.get("format") in WRITERS
        and marker.get("architecture") in ("BiEncoder", "CrossEncoder")
        and isinstance(marker.get("ckpt"), str)
        and isinstance(marker.get("threshold"), (int, float))
    )


def export(ckpt: str | Path, format: str, out: str | Path, overwrite: bool = False) -> Path:
    """Write the model file `ckpt` as `format` into the folder `out` (complete or not at all);
    `overwrite` replaces only a folder an earlier export wrote."""
    if format not in WRITERS:
        raise STSError(f"format={format!r}: choose one of {sorted(WRITERS)}")
    out = Path(out)
    check_apart({"out": out}, {"ckpt": ckpt})
    if out.is_symlink():
        raise STSError(f"out={out}: is a symlink (to {os.readlink(out)}); give the folder itself, as out= names the folder replaced")
    if out.resolve() == Path.cwd().resolve() or out.resolve() in Path.cwd().resolve().parents:
        raise STSError(f"out={out}: is the current folder or one above it, which an export would replace; name a new folder, e.g. out=export")
    if out.exists() and not out.is_dir():
        raise STSError(f"{out}: exists and is not a folder; choose another out=")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise STSError(f"{out}: already exists and is not an empty folder; pass overwrite=true to replace it")
        if not is_export(out):
            raise STSError(f"{out}: overwrite=true only replaces a folder export.py wrote (with its {MARKER}); this one is not, so it is left alone")
    if not out.parent.is_dir():
        raise STSError(f"{out.parent}: output directory does not exist")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    except OSError as e:
        raise STSError(f"{out.parent}: cannot write the export there ({e.strerror or e})") from None
    try:
        module = checkpoint.load(ckpt)
        if getattr(module, "both_orders", False) and format != "onnx":  # sts.load(<onnx export>) scores both, as the file does
            warnings.warn(f"{ckpt} scores each pair in both orders; a {format} export scores one order per call (score both and average the logits to match)", stacklevel=2)
        WRITERS[format](module, tmp)
        (tmp / model_card.FILE).write_text(model_card.render(card_info(module, ckpt), format, out.name), encoding="utf-8")
        record = {"ckpt": str(ckpt), "format": format, "architecture": type(module).__name__, "threshold": module.threshold,
                  "calibration": module.calibration.record if module.calibration is not None else None}
        write_json(tmp / MARKER, record | {"metrics": getattr(module, "checkpoint_metrics", {})})
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {type(module).__name__} as {format} to {out}")
    return out
