"""The ONNX export folder (`export.py format=onnx`), written and read back.

What it holds:
- `model.onnx`: the fp32 graph of `PairModel.encode` (padded token ids -> pooled embeddings, or a
  cross-encoder's logits), written by `sts.core.backends.export_graph`, the exporter the onnx and
  openvino backends build their own graph with; so the folder runs the very graph they run;
- the tokenizer (its save_pretrained files, truncating at the model's max_length);
- `sts_onnx.json` (METADATA): architecture, inputs, output, opset, max_length, pooling,
  both_orders, threshold, head_hidden, the encoder's config and the versions that exported it;
- `head.safetensors` (HEAD), a frozen bi-encoder's MLP head only. The head compares two
  embeddings, while the graph embeds one batch of sentences: in the graph it would need a second
  graph or a different signature than the backends' one `encode` graph. Kept as safetensors (no
  pickle, loaded with shapes checked), it runs in torch as the head of every backend does;
- `.sts-export.json` (export.py's marker: the metrics of the model file it came from).

`load` turns the folder into a BiEncoder or CrossEncoder whose encoder is a weightless
`GraphStandIn`: scoring runs the graph with ONNX Runtime or OpenVINO, the rest (tokenising,
length sorting, the cosine or head, both orders) is the code every backend runs, so scores are
the torch model's (1e-5 in fp32). Everything is checked as hostile first (`read`): every
metadata field, the files present, no pickles, a graph that reads nothing outside itself and
has the inputs and output declared; one line naming the file and field when refused.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sts.core import BiEncoder, CrossEncoder, PairModel, checks
from sts.core.backends import OPSET, OUTPUT, GraphStandIn
from sts.core.pooling import POOLING_MODES
from sts.errors import STSError
from sts.io.checkpoint import check_encoder_config, check_vocabulary, encoder_config
from sts.io.encoders import check_source, check_tokenizer, read_json_object
from sts.io.pretrained import calibration, probability

METADATA = "sts_onnx.json"
GRAPH = "model.onnx"
HEAD = "head.safetensors"
FORMAT = "sts-onnx"
# files that unpickle (run code) when read: never in an export folder
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
INPUTS = {"BiEncoder": (["input_ids", "attention_mask"],),
          "CrossEncoder": (["input_ids", "attention_mask", "token_type_ids"], ["input_ids", "attention_mask"])}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from sts.core.provenance import versions

    found = versions()
    try:
        found["onnx"] = version("onnx")
    except PackageNotFoundError:
        found["onnx"] = "not installed"
    return found


def metadata(module: PairModel, inputs: list[str]) -> dict[str, Any]:
    """METADATA's content for `module`, whose graph takes `inputs`."""
    head = getattr(module, "head", None)
    return {
        "format": FORMAT,
        "version": 1,
        "architecture": type(module).__name__,
        "inputs": inputs,
        "output": OUTPUT,
        "opset": OPSET,
        "max_length": int(module.max_length),
        "pooling": module.pooling,
        "both_orders": bool(getattr(module, "both_orders", False)),
        "threshold": float(module.threshold),
        "head_hidden": int(module.head_hidden) if head is not None else None,
        "encoder_config": module.encoder.config.to_dict(),
        "versions": _versions(),
    }


def save_head(module: PairModel, folder: Path) -> None:
    """A frozen bi-encoder's head as HEAD (nothing for other models)."""
    head = getattr(module, "head", None)
    if head is not None:
        from safetensors.torch import save_file

        save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}, str(folder / HEAD))


def is_export(path: str | Path | None) -> bool:
    """Whether `path` is a folder holding METADATA (what `read` then checks as hostile)."""
    return path is not None and Path(path).is_dir() and os.path.lexists(Path(path) / METADATA)


def _inputs(architecture: str) -> checks.Rule:
    allowed = INPUTS.get(architecture, ())

    def check(value: Any) -> list[str]:
        if value not in allowed:
            raise checks.Invalid(f"must be one of {' or '.join(str(a) for a in allowed)} for a {architecture}")
        return value

    return check


def _versions_rule(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) and len(v) <= 200 for k, v in value.items()) or len(value) > 50:
        raise checks.Invalid("must map package names to version strings")
    return value


def _fields(architecture: str) -> dict[str, checks.Rule]:
    return {
        "format": checks.choice(FORMAT),
        "version": checks.choice(1),
        "architecture": checks.choice("BiEncoder", "CrossEncoder"),
        "inputs": _inputs(architecture),
        "output": checks.choice(OUTPUT),
        "opset": checks.integer(7, 100),
        "max_length": checks.integer(1, 8192),
        "pooling": checks.choice(*POOLING_MODES),
        "both_orders": checks.boolean() if architecture == "CrossEncoder" else checks.choice(False),
        "threshold": checks.number(0, 1),
        "head_hidden": checks.optional(checks.integer(1, 65536)) if architecture == "BiEncoder" else checks.choice(None),
        "encoder_config": lambda value: value,  # check_encoder_config, below
        "versions": _versions_rule,
    }


def _field(path: Path, name: str, value: Any, rule: checks.Rule) -> Any:
    try:
        return rule(value)
    except checks.Invalid as e:
        raise STSError(f"{path}: field {name}={checks.shown(value)} {e}") from None


def read_metadata(folder: Path) -> dict[str, Any]:
    """METADATA with every field present, typed and in range, and no other field."""
    path = folder / METADATA
    meta = read_json_object(path)
    architecture = _field(path, "architecture", meta.get("architecture"), checks.choice("BiEncoder", "CrossEncoder"))
    fields = _fields(architecture)
    unknown = sorted(set(meta) - set(fields))
    if unknown:
        raise STSError(f"{path}: unknown field {checks.shown(unknown[0])} (known: {sorted(fields)})")
    for name, rule in fields.items():
        if name not in meta:
            raise STSError(f"{path}: field {name} is missing")
        meta[name] = _field(path, name, meta[name], rule)
    check_encoder_config(path, meta["encoder_config"], "encoder_config", "field")
    positions = meta["encoder_config"].get("max_position_embeddings")
    if positions is not None and meta["max_length"] > positions:
        raise STSError(f"{path}: field max_length={meta['max_length']} exceeds the encoder's max_position_embeddings={positions}")
    return meta


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor an ONNX graph stores: initializers and node attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _tensors(subgraph)


def check_graph(folder: Path, meta: dict[str, Any]) -> Path:
    """GRAPH present, self-contained (no tensor read from another file, which could lie anywhere),
    with the inputs METADATA declares and one output of the architecture's rank and width."""
    path = folder / GRAPH
    if not path.is_file():
        raise STSError(f"{path}: missing; an ONNX export folder holds its graph as {GRAPH}")
    try:
        import onnx
    except ImportError:
        raise STSError("an ONNX export needs the onnx extra: pip install 'sts[onnx]' (onnx, onnxscript, onnxruntime)") from None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf raises its own error types for a damaged file
        raise STSError(f"{path}: not a readable ONNX graph ({type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:160]})") from None
    graph = model.graph
    external = next((t.name for t in _tensors(graph) if t.data_location == onnx.TensorProto.EXTERNAL), None)
    if external is not None:
        raise STSError(f"{path}: refused: tensor {external!r} is stored in another file, which the graph would read from wherever it names; "
                       f"export.py writes one self-contained {GRAPH}")
    stored = {t.name for t in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in stored]
    if inputs != meta["inputs"]:
        raise STSError(f"{folder / METADATA}: field inputs={checks.shown(meta['inputs'])} differs from the inputs of {GRAPH}, {checks.shown(inputs)}")
    outputs = [o.name for o in graph.output]
    if outputs != [meta["output"]]:
        raise STSError(f"{folder / METADATA}: field output={checks.shown(meta['output'])} differs from the outputs of {GRAPH}, {checks.shown(outputs)}")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in graph.output[0].type.tensor_type.shape.dim]
    width = meta["encoder_config"].get("hidden_size")
    expected = [None] if meta["architecture"] == "CrossEncoder" else [None, width]
    if len(dims) != len(expected) or (len(dims) == 2 and dims[1] is not None and dims[1] != width):
        raise STSError(f"{path}: its output has shape {dims}; a {meta['architecture']} with hidden_size={width} gives {expected} (None: any batch)")
    return path


def _refuse_pickles(folder: Path) -> None:
    for entry in sorted([*folder.glob("*"), *folder.glob("*/*")]):
        if entry.suffix.lower() in PICKLE_SUFFIXES:
            raise STSError(f"{entry}: refused: a {entry.suffix} file in an ONNX export folder, which holds no pickled data (export.py writes none)")


def _head(folder: Path, hidden: int | None) -> dict[str, torch.Tensor] | None:
    path = folder / HEAD
    if hidden is None:
        if os.path.lexists(path):
            raise STSError(f"{path}: present, but {folder / METADATA} field head_hidden=None says the model has no head")
        return None
    if not path.is_file():
        raise STSError(f"{path}: missing; {folder / METADATA} field head_hidden={hidden} says the bi-encoder's head is stored there")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        weights = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise STSError(f"{path}: not a readable safetensors file ({type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:160]})") from None
    for name, tensor in weights.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise STSError(f"{path}: tensor {name!r} holds NaN or infinite weights")
    return weights


@dataclass(frozen=True)
class OnnxExport:
    """An ONNX export folder as `read` checked it."""

    folder: Path
    meta: dict[str, Any]
    tokenizer: Any
    config: Any  # the encoder's transformers config
    graph: Path
    head: dict[str, torch.Tensor] | None
    info: dict[str, Any]  # threshold source and metrics, as Model.info reports them


def read(folder: str | Path) -> OnnxExport:
    """Everything in the folder, checked as hostile, without running the graph."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    check_source(str(folder))  # symlinks stay inside; tokenizer_config (and any config.json) load no code
    _refuse_pickles(folder)
    meta = read_metadata(folder)
    graph = check_graph(folder, meta)
    if not (folder / "tokenizer_config.json").is_file():
        raise STSError(f"{folder / 'tokenizer_config.json'}: missing; an ONNX export folder holds its tokenizer's files")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    except Exception as e:  # tokenizers raises plain Exceptions from Rust for malformed files
        raise STSError(f"{folder}: the tokenizer files do not make a tokenizer ({type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:160]})") from None
    check_tokenizer(tokenizer, folder)
    config = encoder_config({"encoder_config": meta["encoder_config"], "architecture": meta["architecture"]}, folder / METADATA)
    check_vocabulary(folder, tokenizer, config)
    head = _head(folder, meta["head_hidden"])
    _, marked = calibration(folder)
    return OnnxExport(folder, meta, tokenizer, config, graph, head, {"threshold_source": "export", "metrics": marked["metrics"]})


def load(folder: str | Path) -> tuple[PairModel, dict[str, Any]]:
    """The folder's model, its network a `GraphStandIn` for the graph (backend=onnx | openvino
    run it), and what it says about itself (threshold source, metrics)."""
    found = read(folder)
    meta, stand_in = found.meta, GraphStandIn(found.config, found.graph)
    module: PairModel
    if meta["architecture"] == "CrossEncoder":
        module = CrossEncoder(encoder=stand_in, tokenizer=found.tokenizer, max_length=meta["max_length"], pooling=meta["pooling"], both_orders=meta["both_orders"])
        module.dense = module.classifier = None  # the head is in the graph
    else:
        hidden = meta["head_hidden"]

        def bi_encoder() -> BiEncoder:
            return BiEncoder(encoder=stand_in, tokenizer=found.tokenizer, max_length=meta["max_length"], pooling=meta["pooling"],
                             freeze_encoder=hidden is not None, **({"head_hidden": hidden} if hidden is not None else {}))

        if found.head is not None:  # shapes compared on the meta device first: a declared width allocates nothing
            with torch.device("meta"):
                expected = {k: tuple(v.shape) for k, v in bi_encoder().head.state_dict().items()}
            if {k: tuple(v.shape) for k, v in found.head.items()} != expected:
                raise STSError(f"{found.folder / HEAD}: its tensors do not fit a head of width head_hidden={hidden} (expected {expected})")
        module = bi_encoder()
        if module.head is not None and found.head is not None:
            module.head.load_state_dict(found.head)
    module.threshold = meta["threshold"]
    module.calibration = probability(found.folder)
    return module.eval(), found.info
