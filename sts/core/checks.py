"""Value rules shared by the two edges where untrusted values enter: command-line options
(`sts.config.options`) and checkpoint payloads (`sts.io.checkpoint`). A rule returns the value, normalised
(e.g. "3" -> 3 from a YAML string), or raises `Invalid` saying what is allowed; the caller adds
where the value came from (option name, or file and field)."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Rule = Callable[[Any], Any]


class Invalid(ValueError):
    """A value outside its rule; the message says what is allowed."""


def shown(value: Any, limit: int = 60) -> str:
    """A value as an error message shows it: repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def integer(lo: int | None = None, hi: int | None = None) -> Rule:
    """A whole number (not a bool, not 2.5) in [lo, hi]."""
    allowed = "an integer" + (f" >= {lo}" if hi is None and lo is not None else "") + (f" in [{lo}, {hi}]" if hi is not None else "")

    def check(value: Any) -> int:
        if isinstance(value, bool):
            raise Invalid(f"must be {allowed}")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise Invalid(f"must be {allowed}") from None
        if not isinstance(value, int) or (lo is not None and value < lo) or (hi is not None and value > hi):
            raise Invalid(f"must be {allowed}")
        return value

    return check


def number(lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False) -> Rule:
    """A finite real number in the interval given (open ends excluded)."""
    left, right = ("(" if lo_open else "["), (")" if hi_open else "]")
    allowed = f"a number in {left}{'-inf' if lo is None else f'{lo:g}'}, {'inf' if hi is None else f'{hi:g}'}{right}"

    def check(value: Any) -> float:
        if isinstance(value, bool):
            raise Invalid(f"must be {allowed}")
        try:
            number_ = float(value)
        except (TypeError, ValueError, OverflowError):
            raise Invalid(f"must be {allowed}") from None
        bad_lo = lo is not None and (number_ <= lo if lo_open else number_ < lo)
        bad_hi = hi is not None and (number_ >= hi if hi_open else number_ > hi)
        if not math.isfinite(number_) or bad_lo or bad_hi:
            raise Invalid(f"must be {allowed}")
        return number_

    return check


def choice(*values: Any) -> Rule:
    """One of `values` (compared as given, so True is not "true")."""

    def check(value: Any) -> Any:
        if isinstance(value, bool) and not any(isinstance(v, bool) for v in values) or value not in values:
            raise Invalid(f"must be one of {', '.join(str(v) for v in values)}")
        return value

    return check


def boolean() -> Rule:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise Invalid("must be true or false")
        return value

    return check


def text(max_length: int = 4096) -> Rule:
    """A non-empty string."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or not value.strip() or len(value) > max_length:
            raise Invalid(f"must be a non-empty string of at most {max_length} characters")
        return value

    return check


def threshold_objective() -> Rule:
    """f1 | accuracy | precision@<target> (sts.core.metrics.parse_objective)."""

    def check(value: Any) -> str:
        from sts.core.metrics import parse_objective

        try:
            parse_objective(value)
        except ValueError as e:
            raise Invalid(str(e)) from None
        return value

    return check


def optional(rule: Rule) -> Rule:
    """null, or a value the rule accepts."""

    def check(value: Any) -> Any:
        if value is None:
            return None
        try:
            return rule(value)
        except Invalid as e:
            raise Invalid(f"{e} (or null)") from None

    return check


def either(*rules: Rule) -> Rule:
    """A value any of the rules accepts (the first that does normalises it)."""

    def check(value: Any) -> Any:
        problems = []
        for rule in rules:
            try:
                return rule(value)
            except Invalid as e:
                problems.append(str(e).removeprefix("must be "))
        raise Invalid("must be " + " or ".join(problems))

    return check


def plain_data(value: Any, max_depth: int = 6, max_items: int = 100_000, leaf: Callable[[Any], bool] | None = None) -> None:
    """JSON-like data only (str, int, float, bool, None, lists, string-keyed dicts), bounded in
    depth and size, so no field of a file can smuggle in objects or unbounded structures.
    `leaf`, when given, must also accept every non-container value."""
    budget = [max_items]

    def walk(node: Any, depth: int) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise Invalid(f"holds more than {max_items} values")
        if depth > max_depth:
            raise Invalid(f"is nested deeper than {max_depth} levels")
        if leaf is not None and not isinstance(node, (list, tuple, dict)):
            if not leaf(node):
                raise Invalid(f"holds {shown(node, 30)}, which is not allowed there")
            return
        if node is None or isinstance(node, (str, bool, int, float)):
            return
        if isinstance(node, (list, tuple)):
            for item in node:
                walk(item, depth + 1)
            return
        if isinstance(node, dict):
            for key, item in node.items():
                if not isinstance(key, (str, int)):
                    raise Invalid(f"has a key of type {type(key).__name__}")
                walk(item, depth + 1)
            return
        raise Invalid(f"holds a {type(node).__name__}, not plain data")

    walk(value, 0)


# sizes an encoder config (a checkpoint's payload or a model folder's config.json) may declare;
# the built module must then match the stored tensors
ENCODER_SIZES = {
    "vocab_size": integer(1, 1_000_000),
    "hidden_size": integer(1, 8192),
    "dim": integer(1, 8192),
    "num_hidden_layers": integer(1, 128),
    "n_layers": integer(1, 128),
    "num_attention_heads": integer(1, 256),
    "n_heads": integer(1, 256),
    "intermediate_size": integer(1, 65536),
    "hidden_dim": integer(1, 65536),
    "max_position_embeddings": integer(1, 65536),
    "type_vocab_size": integer(0, 64),
    "embedding_size": integer(1, 8192),
}
# attention a model folder's config may name: torch's own kernels. Anything else may make
# transformers fetch a kernel from the Hub ("org/repo") or load a native extension; the
# flash_attention_* names fall back to Hub kernels when flash-attn is not installed.
LOCAL_ATTENTION = ("eager", "sdpa", "flex_attention")
# config fields that name code for transformers to fetch, import or compile: never honoured
CODE_FIELDS = ("auto_map", "custom_pipelines", "quantization_config", "experts_implementation", "_experts_implementation")
ATTENTION_FIELDS = ("attn_implementation", "_attn_implementation")
# the weights' precision a config may declare (transformers resolves the name on torch)
DTYPE_FIELDS = ("dtype", "torch_dtype")
FLOAT_DTYPES = ("float32", "float16", "bfloat16", "float64")


def _nested_dicts(value: Any) -> list[dict[str, Any]]:
    """`value` and every mapping inside it (sub-configs carry their own fields)."""
    found, stack = [], [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found.append(node)
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return found


def model_config(value: Any) -> dict[str, Any]:
    """A transformers config.json's content that loads no code: no auto_map (remote code,
    refused whatever trust_remote_code says), no field naming a Hub kernel or native extension,
    attention one of LOCAL_ATTENTION."""
    if not isinstance(value, dict):
        raise Invalid("must be a JSON object")
    for node in _nested_dicts(value):
        for field in CODE_FIELDS:
            if node.get(field) is not None:
                what = "remote code, which is never run" if field in ("auto_map", "custom_pipelines") else "code transformers would fetch or load, which is never done"
                raise Invalid(f"has {field}: {field} names {what}")
        for field in ATTENTION_FIELDS:
            attention = node.get(field)
            if attention is not None and attention not in LOCAL_ATTENTION:
                raise Invalid(f"has {field}={shown(attention, 40)}: only {', '.join(LOCAL_ATTENTION)} are allowed (other attention names a Hub kernel or native code)")
        for field in DTYPE_FIELDS:
            dtype = node.get(field)
            if dtype is not None and dtype not in FLOAT_DTYPES:
                raise Invalid(f"has {field}={shown(dtype, 40)}: must be one of {', '.join(FLOAT_DTYPES)} (or null)")
    return value


def folder_model_config(value: Any) -> dict[str, Any]:
    """A model folder's config.json: `model_config`, and sizes within ENCODER_SIZES (checked
    before transformers builds anything from them)."""
    model_config(value)
    for key, rule in ENCODER_SIZES.items():
        if key in value:
            try:
                rule(value[key])
            except Invalid as e:
                raise Invalid(f"has {key}={shown(value[key])}: {e}") from None
    return value


def tokenizer_config(value: Any) -> dict[str, Any]:
    """A tokenizer_config.json's content that loads no code: no auto_map, and a tokenizer_class
    (if any) that transformers itself defines."""
    if not isinstance(value, dict):
        raise Invalid("must be a JSON object")
    if value.get("auto_map") is not None:
        raise Invalid("has auto_map: auto_map names remote code, which is never run")
    name = value.get("tokenizer_class")
    if name is not None and not _transformers_tokenizer(name):
        raise Invalid(f"has tokenizer_class={shown(name, 40)}, which is not a tokenizer transformers defines (custom code is never run)")
    return value


def _transformers_tokenizer(name: Any) -> bool:
    import transformers

    if not isinstance(name, str) or not name.isidentifier():
        return False
    try:
        cls = getattr(transformers, name)
    except (AttributeError, ImportError):  # not a transformers name, or one whose backend is missing
        return False
    return isinstance(cls, type) and issubclass(cls, transformers.PreTrainedTokenizerBase)
