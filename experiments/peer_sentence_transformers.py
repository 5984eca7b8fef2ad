"""Train sentence-transformers and this framework with the same settings in one run; compare on STS-B test.

    python experiments/peer_sentence_transformers.py --arch bi --epochs 1 --seed 0
    python experiments/peer_sentence_transformers.py --arch cross --epochs 1 --seed 0

Both start from the bundled all-MiniLM-L6-v2 and train on the bundled STS-B train split with the
same batch size, learning rate, warm-up ratio, epochs and seed: the peer with
`SentenceTransformerTrainer` + `CosineSimilarityLoss` (bi) or `CrossEncoderTrainer` +
`BinaryCrossEntropyLoss` (cross); ours with `train.py`'s code and the matching overrides (plus its
own defaults: length-grouped batches, best epoch on dev). Both models are scored on the same test
pairs and Spearman is computed by the same function. Prints both figures and the difference and
writes experiments/peer/<arch>-<loss>-e<epochs>-lr<lr>-s<seed>.json. Needs `pip install -e ".[peer]"`.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sts.core import provenance
from sts.config import compose
from sts.data.readers import read_pairs
from sts.core.metrics import pair_metrics
from sts.io.encoders import resolve
from sts.data.terminal import format_table
from sts.resources import resource

OUT = Path(__file__).resolve().parent / "peer"
HF_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def spearman(scores: np.ndarray, gold: np.ndarray) -> float:
    return 100 * pair_metrics(torch.as_tensor(scores), torch.as_tensor(gold), 0.8, 0.5)["spearman"]


def plain_hf_copy(tmp: Path) -> str:
    """The bundled checkpoint without its sentence-transformers module files, so CrossEncoder
    builds a fresh sequence-classification head on it exactly as from any HF encoder."""
    src = Path(resolve(None))
    dst = tmp / "minilm-hf"
    dst.mkdir()
    for name in HF_FILES:
        if (src / name).exists():
            shutil.copy(src / name, dst / name)
    return str(dst)


def train_peer(args: argparse.Namespace, tmp: Path) -> tuple[np.ndarray, float]:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss, CosineSimilarityLoss

    train = read_pairs(resource("stsb/sts-train.csv"), "stsb")
    test = read_pairs(resource("stsb/sts-test.csv"), "stsb")
    data = Dataset.from_dict({"sentence1": train.sentence1, "sentence2": train.sentence2, "score": train.gold.tolist()})
    common = dict(
        output_dir=str(tmp / "peer"), num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr, warmup_ratio=args.warmup, seed=args.seed, save_strategy="no", report_to="none",
        logging_steps=50, use_cpu=not torch.cuda.is_available(),
    )
    started = time.perf_counter()
    if args.arch == "bi":
        model = SentenceTransformer(resolve(None), device="cuda" if torch.cuda.is_available() else "cpu")
        loss = CoSENTLoss(model) if args.loss == "cosent" else CosineSimilarityLoss(model)
        SentenceTransformerTrainer(model=model, args=SentenceTransformerTrainingArguments(**common), train_dataset=data, loss=loss).train()
        seconds = time.perf_counter() - started
        u = model.encode(test.sentence1, batch_size=64, convert_to_tensor=True)
        v = model.encode(test.sentence2, batch_size=64, convert_to_tensor=True)
        scores = torch.nn.functional.cosine_similarity(u, v).cpu().numpy()
    else:
        model = CrossEncoder(plain_hf_copy(tmp), num_labels=1, max_length=128)
        CrossEncoderTrainer(model=model, args=CrossEncoderTrainingArguments(**common), train_dataset=data, loss=BinaryCrossEntropyLoss(model)).train()
        seconds = time.perf_counter() - started
        scores = np.asarray(model.predict(list(zip(test.sentence1, test.sentence2)), batch_size=64))
    return scores, seconds


def train_ours(args: argparse.Namespace, tmp: Path) -> tuple[np.ndarray, float, float]:
    from sts.io import checkpoint
    from sts.training.fit import train

    overrides = [
        f"model={'bi_encoder' if args.arch == 'bi' else 'cross_encoder'}",
        "soup=none",  # one model, as the peer trains
        f"loss={args.loss}",
        f"seed={args.seed}",
        f"data.batch_size={args.batch_size}",
        f"model.encoder_lr={args.lr}",
        f"model.head_lr={args.lr}",
        f"model.warmup_ratio={args.warmup}",
        f"trainer.max_epochs={args.epochs}",
        "trainer.enable_progress_bar=false",
        *args.ours,
    ]
    metrics = train(compose("train", overrides, tmp / "ours"))
    test = read_pairs(resource("stsb/sts-test.csv"), "stsb")
    model = checkpoint.load(tmp / "ours" / "model.pt")
    scores = model.score_texts(test.sentence1, test.sentence2, clip=False)
    return scores, metrics["train_seconds"], 100 * metrics["val/spearman"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=["bi", "cross"], default="bi")
    parser.add_argument("--loss", choices=["cosine", "cosent", "bce"], default=None, help="default: cosine (bi), bce (cross)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--warmup", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ours", nargs="*", default=[], help="extra Hydra overrides for our run only (recipe changes)")
    args = parser.parse_args()
    args.loss = args.loss or ("cosine" if args.arch == "bi" else "bce")
    gold = read_pairs(resource("stsb/sts-test.csv"), "stsb").gold
    with tempfile.TemporaryDirectory() as tmp:
        peer_scores, peer_seconds = train_peer(args, Path(tmp))
        our_scores, our_seconds, our_dev = train_ours(args, Path(tmp))
    peer, ours = spearman(peer_scores, gold), spearman(our_scores, gold)
    record = {
        "arch": args.arch, "loss": args.loss, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "warmup": args.warmup, "seed": args.seed, "ours_overrides": args.ours,
        "peer_test_spearman": peer, "ours_test_spearman": ours, "difference": ours - peer, "ours_dev_spearman": our_dev,
        "peer_train_seconds": peer_seconds, "ours_train_seconds": our_seconds,
        "hardware": provenance.hardware(), "versions": provenance.versions(), "git_commit": provenance.git_commit(),
        "command": "python experiments/" + provenance.command(),
    }
    import sentence_transformers

    record["versions"]["sentence_transformers"] = sentence_transformers.__version__
    OUT.mkdir(exist_ok=True)
    name = f"{args.arch}-{args.loss}-e{args.epochs}-lr{args.lr:g}-s{args.seed}" + ("-" + "-".join(o.replace("=", "") for o in args.ours) if args.ours else "")
    (OUT / f"{name.replace('/', '_')}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(record["command"])
    print(record["hardware"], record["versions"])
    print(format_table([
        ["framework", "test spearman x100", "train seconds"],
        ["sentence-transformers", f"{peer:.2f}", f"{peer_seconds:.0f}"],
        ["sts (ours)", f"{ours:.2f}", f"{our_seconds:.0f}"],
        ["difference (ours - peer)", f"{ours - peer:+.2f}", ""],
    ]))


if __name__ == "__main__":
    main()
