"""What a model is and how it was made, from its own record: `Model.info` (`model_info`) and the
README.md model card every export carries (`render`), so the two say the same thing.

The card opens with the YAML front matter the Hugging Face Hub reads (library, tags, datasets,
metrics with values as a model-index), then says what the model is, its intended use and limits,
how it was trained (recipe, command, data, hardware, time), its dev/test metrics, the decision
threshold and its objective, its calibration and any other recorded results. A fact the model file
does not record (files from before it recorded its run) is said to be unrecorded, never guessed."""
from __future__ import annotations

import json
from typing import Any

import yaml

from sts.core.calibration import Calibration

FILE = "README.md"
# Hub ids of the data sets training reads (sts/conf/data); other data is named, not linked
DATASETS = {"stsb": ("sentence-transformers/stsb", "STS Benchmark"), "sick": ("RobZamp/sick", "SICK"), "msrp": ("nyu-mll/glue", "MSRP (GLUE MRPC)")}
LIBRARIES = {"sentence-transformers": "sentence-transformers", "hf": "transformers", "onnx": "onnx"}
# the metrics a card lists, in order, with the Hub's metric type
CARD_METRICS = {"spearman": "spearmanr", "pearson": "pearsonr", "accuracy": "accuracy", "f1": "f1", "precision": "precision", "recall": "recall",
                "auroc": "roc_auc", "average_precision": "average_precision", "mcc": "matthews_correlation"}
CALIBRATION_METRICS = ("ece_raw", "ece", "brier_raw", "brier")
SPLITS = {"val": "dev", "test": "test"}


def model_info(architecture: str, encoder: Any, max_length: int, pooling: str | None, both_orders: bool | None, threshold: float,
               precision: str, backend: str, origin: dict[str, Any], calibration: Calibration | None = None, calibrated: bool = False,
               long_inputs: str = "truncate", pad_to_multiple_of: int = 1) -> dict[str, Any]:
    """`Model.info` (and `Description.info`): what the model is, how it scores, where it came from.
    `threshold` is on the scale of the scores (a probability when `calibrated`); `long_inputs`:
    whether texts beyond max_length are truncated or read in windows; `pad_to_multiple_of`: the
    token multiple its batches are padded to."""
    return {
        "architecture": architecture,
        "encoder": {
            "model_type": encoder.model_type,
            "name": getattr(encoder, "_name_or_path", "") or None,
            "layers": getattr(encoder, "num_hidden_layers", None),
            "hidden_size": getattr(encoder, "hidden_size", None),
        },
        "max_length": max_length,
        "pooling": pooling,
        "both_orders": both_orders,
        "threshold": float(threshold),
        "calibration": calibration.describe() if calibration is not None else None,
        "calibrated": calibrated,
        "precision": precision,
        "backend": backend,
        "long_inputs": long_inputs,
        "pad_to_multiple_of": pad_to_multiple_of,
        **origin,
    }


def file_origin(path: Any, metrics: dict[str, Any], training: dict[str, Any]) -> dict[str, Any]:
    """Where a model file came from, as its record says: the metrics it measured, the data and
    model config it was trained with, its training hyper-parameters and its run (command,
    hardware, time, commit; files written before runs were recorded have none)."""
    return {
        "source": str(path),
        "threshold_source": f"dev of {metrics.get('data', 'its training data')}, chosen at training by {training.get('threshold_objective', 'f1')}",
        "metrics": {k: v for k, v in metrics.items() if k not in ("config", "data", "run")},
        "trained_on": metrics.get("data"),
        "made_by": metrics.get("config"),
        "training": dict(training),
        "run": metrics.get("run"),
    }


def _split_metrics(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{"val": {...}, "test": {...}, other prefixes...} from "split/name" keys with numeric values."""
    found: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        prefix, sep, name = key.partition("/")
        if sep and isinstance(value, (int, float)) and not isinstance(value, bool):
            found.setdefault(prefix, {})[name] = float(value)
    return found


def front_matter(info: dict[str, Any], format: str, name: str) -> dict[str, Any]:
    """The Hub's metadata: library, tags, datasets and the test (else dev) metrics as a model-index."""
    cross = info["architecture"] == "CrossEncoder"
    data = info.get("trained_on")
    dataset_id, dataset_name = DATASETS.get(data, (None, data))
    split_metrics = _split_metrics(info.get("metrics", {}))
    meta: dict[str, Any] = {
        "library_name": LIBRARIES[format],
        "pipeline_tag": "text-classification" if cross else "sentence-similarity",
        "language": ["en"],
        "tags": ["sentence-similarity", "semantic-textual-similarity", "cross-encoder" if cross else "sentence-transformers", "sts", format],
        "metrics": sorted({CARD_METRICS[k] for split in split_metrics.values() for k in split if k in CARD_METRICS}),
    }
    if dataset_id:
        meta["datasets"] = [dataset_id]
    results = []
    for split in ("test", "val"):
        values = split_metrics.get(split, {})
        if any(k in values for k in CARD_METRICS):
            results.append({
                "task": {"type": "text-classification" if cross else "sentence-similarity", "name": "Semantic Textual Similarity"},
                "dataset": {"name": f"{dataset_name or 'unrecorded data'} {SPLITS[split]}", "type": dataset_id or str(data), "split": "validation" if split == "val" else "test"},
                "metrics": [{"type": CARD_METRICS[k], "name": f"{SPLITS[split]} {k}", "value": round(values[k], 4)} for k in CARD_METRICS if k in values],
            })
    if results:
        meta["model-index"] = [{"name": name, "results": results}]
    return meta


def _value(value: Any) -> str:
    return "not recorded" if value is None else f"`{value}`" if not isinstance(value, (dict, list)) else f"`{json.dumps(value)}`"


def _table(split_metrics: dict[str, dict[str, float]], names: tuple[str, ...], scale: float = 100.0) -> list[str]:
    rows = [split for split in ("val", "test") if any(n in split_metrics.get(split, {}) for n in names)]
    if not rows:
        return ["Not recorded in the model file."]
    used = [n for n in names if any(n in split_metrics[s] for s in rows)]
    lines = ["| split | " + " | ".join(used) + " |", "|---|" + "---|" * len(used)]
    for split in rows:
        lines.append(f"| {SPLITS[split]} | " + " | ".join(f"{scale * split_metrics[split][n]:.2f}" if n in split_metrics[split] else "" for n in used) + " |")
    return lines


def render(info: dict[str, Any], format: str, name: str) -> str:
    """The README.md model card of a model whose `Model.info` is `info`, exported as `format`."""
    cross = info["architecture"] == "CrossEncoder"
    encoder, run, training = info["encoder"], info.get("run") or {}, info.get("training") or {}
    data = info.get("trained_on") or "unrecorded data"
    split_metrics = _split_metrics(info.get("metrics", {}))
    english = "English only: the encoder was pretrained on English text and fine-tuned and measured on English pairs" + (
        " (MiniLM's WordPiece vocabulary is English)" if "minilm" in str(encoder.get("name") or run.get("encoder") or "").lower() else "")
    how = ("reads both sentences together ([CLS] s1 [SEP] s2) and gives sigmoid(logit)" if cross
           else f"embeds each sentence ({info.get('pooling')} pooling) and gives the cosine of the two embeddings")
    load = {
        "sentence-transformers": (f"from sentence_transformers import {'CrossEncoder' if cross else 'SentenceTransformer'}\n"
                                  + (f"model = CrossEncoder(\"{name}\")\nscores = model.predict([(\"A man plays guitar.\", \"A man is playing a guitar.\")])"
                                     if cross else f"model = SentenceTransformer(\"{name}\")\nembeddings = model.encode([\"A man plays guitar.\", \"A man is playing a guitar.\"])")),
        "hf": f"from transformers import {'AutoModelForSequenceClassification' if cross else 'AutoModel'}, AutoTokenizer\nmodel = "
              + f"{'AutoModelForSequenceClassification' if cross else 'AutoModel'}.from_pretrained(\"{name}\")",
        "onnx": "",
    }[format]
    calibration = info.get("calibration")
    lines = [
        "---",
        yaml.safe_dump(front_matter(info, format, name), sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# {name}",
        "",
        f"A {'cross-encoder' if cross else 'bi-encoder'} that scores how similar two English sentences are, 0 to 1, and labels a pair "
        f"similar (`lbl` 1) when its score reaches the decision threshold {info['threshold']:.4f}. It {how}. Encoder: "
        f"{encoder.get('model_type')}, {encoder.get('layers')} layers, hidden size {encoder.get('hidden_size')}, at most {info.get('max_length')} tokens per input. "
        f"Made with the sts framework and exported as `{format}`.",
        "",
        "## Use",
        "",
        "```python",
        "import sts",
        f"model = sts.load(\"{name}\")            # this folder" + ("; scores with ONNX Runtime" if format == "onnx" else ""),
        "model.score([\"A man plays guitar.\"], [\"A man is playing a guitar.\"])   # similarity, 0-1",
        "model.label([\"A man plays guitar.\"], [\"A man is playing a guitar.\"])   # 1 = similar",
        *(["# or, without sts:", load] if load else []),
        "```",
        "",
        "## Intended use and limits",
        "",
        f"- Similarity of short English sentence pairs like those of {DATASETS.get(data, (None, data))[1]}" + (" (news headlines, image captions, forum posts)" if data == "stsb" else "")
        + ": as a 1/0 label through its threshold, or as a ranking score.",
        f"- {english}; other languages are untested and will score poorly.",
        f"- Inputs longer than {info.get('max_length')} tokens are truncated (the rest of a paragraph is not read) unless scored with "
        "`long_inputs=chunk`, which reads them in overlapping windows of that many tokens.",
        f"- The threshold was chosen on {data} dev; on other data (paraphrase corpora, other domains) the share of similar pairs and the "
        "best threshold differ: measure on your own labelled pairs (`python evaluate.py ckpt=... data=pairs data.test=FILE threshold_objective=f1`).",
        "- A score is " + ("a probability of \"similar\" only with `calibrated=true` (see Calibration); the raw score is the model's "
                           "sigmoid output on STS-B's scale." if calibration else "the model's own scale, not a probability (this model has no calibration)."),
        "",
        "## Training",
        "",
        f"- Data: {data}" + (f" ([{DATASETS[data][0]}](https://huggingface.co/datasets/{DATASETS[data][0]}))" if data in DATASETS else ""),
        f"- Recipe (model config): {_value(info.get('made_by'))}",
        f"- Training hyper-parameters: {_value(training or None)}",
        f"- Command: {_value(run.get('command'))}" + (f" (experiment `{run['experiment']}`)" if run.get("experiment") else ""),
        f"- Pretrained encoder: {_value(run.get('encoder') or encoder.get('name'))}; loss: {_value(run.get('loss'))}; seed: {_value(run.get('seed'))}; "
        f"epochs: {_value(run.get('epochs'))}; steps: {_value(run.get('steps'))}",
        f"- Hardware: {_value(run.get('hardware'))}",
        f"- Training time: " + (f"{info['metrics']['train_seconds'] / 60:.1f} minutes" if isinstance(info.get("metrics", {}).get("train_seconds"), (int, float)) else "not recorded"),
        f"- Code: git commit {_value(run.get('git_commit'))}; versions {_value(run.get('versions'))}",
        "",
        f"## Evaluation (x100, at the threshold; {data})",
        "",
        *_table(split_metrics, tuple(CARD_METRICS)),
        "",
        "## Decision threshold",
        "",
        f"`lbl` = score >= {info['threshold']:.4f}: {info.get('threshold_source', 'not recorded')}"
        + (" (the threshold on the calibrated scale when loaded with `calibrated=true`)." if info.get("calibrated") else "."),
        "",
        "## Calibration",
        "",
        *((f"{calibration}.", "",
           "`sts.load(path, calibrated=True)` (or `calibrated=true` on any command) makes `score` this probability that gold rates the pair "
           "similar; the threshold is mapped through the same monotone map, so `lbl` is unchanged. Expected calibration error "
           "(15 equal-width bins) and Brier score, raw score read as a probability vs calibrated (x100):", "",
           *_table(split_metrics, CALIBRATION_METRICS)) if calibration else
          ("None: fit one on dev with `python -m sts.commands.calibrate ckpt=MODEL out=NEW.pt`.",)),
        "",
        "## Other recorded results",
        "",
        *(_other(split_metrics) or ["None recorded in the model file (transfer to other data: experiments/RESULTS.md of the sts repository)."]),
        "",
        "## Provenance",
        "",
        f"Exported from `{info.get('source')}` by `python export.py format={format}`; `sts.load(model file).info` shows these facts.",
        "",
    ]
    return "\n".join(lines)


def _other(split_metrics: dict[str, dict[str, float]]) -> list[str]:
    """Results under other prefixes than val/test (e.g. transfer to another data set)."""
    return [f"- {prefix}: " + ", ".join(f"{k} {v:.4g}" for k, v in values.items()) for prefix, values in split_metrics.items() if prefix not in SPLITS]
