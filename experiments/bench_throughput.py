"""Training and scoring throughput of this framework vs sentence-transformers, in one run.

    python experiments/bench_throughput.py [--quick] [--precision auto|fp32|bf16] [--device cpu|cuda]
        [--cross-model MODEL.pt] [--bi-model MODEL.pt] [--as-host vnni|avx2] [--cases CASE ...]

Same model (bundled all-MiniLM-L6-v2), batch size, max_length and threads for both. Each case
runs in its own worker process (so peak RSS is per case) with one warm-up and --repeats timed
repeats; medians are reported. Training: a fixed number of optimizer steps over STS-B train with
each framework's own training loop and data pipeline (ours: Lightning + length-grouped batches;
peer: SentenceTransformerTrainer / CrossEncoderTrainer), timed from the third optimizer step to
the last, so one-off set-up of either framework is not counted. Scoring: our prediction path
(`sts.core.scorer.Scorer` on a model loaded from a checkpoint, as predict.py does) vs
`SentenceTransformer.encode` of both sides + cosine and `CrossEncoder.predict`, on STS-B test and
on 20,000 pairs drawn from 400 STS-B sentences (each recurs about 100 times). The cross-encoder
peer gets our exact weights through `export.py format=sentence-transformers`.

Each framework runs with its own defaults: ours `precision=auto backend=auto` for scoring (each
row says what ran: torch bf16 on AMX, OpenVINO int8 on CPUs with VNNI, ONNX Runtime int8 on AVX2 ...) and trainer=default's
precision for training (bf16 on CPUs with AMX, fp32 elsewhere), the peer fp32 (`--precision fp32`
or `bf16` puts ours, or both, in that precision). Extra rows run our other settings against the
same peer figures: training in fp32 and with torch's dropout masks (encoder.packed_dropout=false), scoring in fp32, scoring with backend=onnx int8 (dynamic and
static) and with backend=openvino (auto, fp32 and NNCF int8), each scoring row with its STS-B test Spearman drop against fp32. The cross-encoder is untrained unless --cross-model names a trained one, so its
drops mean little without it; --bi-model scores a trained bi-encoder (both sides) instead of the
zero-shot MiniLM. --as-host vnni|avx2 makes our hardware checks see that host kind, for a run whose
runtimes the caller capped with ONEDNN_MAX_CPU_ISA (an emulation: the table says so). The table
says which targets of issues 22 and 31 apply to this host (AMX or not); the last line is one JSON
object with medians, ratios, what each row ran, score differences, drops and the host.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sts.core import provenance  # noqa: E402
from sts.data.terminal import format_table  # noqa: E402

CASES = [
    "train_bi_ours", "train_bi_peer", "train_cross_ours", "train_cross_peer",
    "predict_bi_stsb_ours", "predict_bi_stsb_peer", "predict_bi_repeated_ours", "predict_bi_repeated_peer",
    "predict_cross_stsb_ours", "predict_cross_stsb_peer",
    # our other settings, compared with the same peer rows
    "train_bi_ours_fp32", "train_cross_ours_fp32", "train_bi_ours_torchdropout", "train_cross_ours_torchdropout",
    "predict_bi_stsb_ours_fp32", "predict_bi_stsb_ours_int8", "predict_bi_stsb_ours_int8static",
    "predict_bi_stsb_ours_openvino", "predict_bi_stsb_ours_openvino_fp32",
    "predict_cross_stsb_ours_fp32", "predict_cross_stsb_ours_int8", "predict_cross_stsb_ours_int8static",
    "predict_cross_stsb_ours_openvino", "predict_cross_stsb_ours_openvino_fp32",
    "predict_bi_stsb_ours_openvino_int8", "predict_cross_stsb_ours_openvino_int8",
]
# variant -> (precision, backend, quantize) of our scoring, or the trainer precision of our training
SCORING_VARIANTS = {"fp32": ("fp32", "torch", None), "int8": ("fp32", "onnx", "dynamic"), "int8static": ("fp32", "onnx", "static"),
                    "openvino": ("auto", "openvino", "none"), "openvino_fp32": ("fp32", "openvino", "none"), "openvino_int8": ("auto", "openvino", "static")}
# --as-host: what our hardware checks (sts.core.precision) see in the workers, for a run whose runtimes
# the caller capped to that host's instructions (ONEDNN_MAX_CPU_ISA)
AS_HOST = {"vnni": {"native_bf16": None, "int8_dot_products": "avx512_vnni"}, "avx2": {"native_bf16": None, "int8_dot_products": None}}
# issue 22's targets (median ratio ours/peer with the defaults), by host kind
TARGETS = {"amx": {"predict_bi_stsb": 2.5, "predict_cross_stsb": 2.0, "train_bi": 2.5, "train_cross": 2.5},
           "any": {"predict_bi_stsb": 2.0, "predict_cross_stsb": 1.6, "train_bi": 1.7, "train_cross": 1.7}}


# ---------------------------------------------------------------- data shared by all workers
def stsb(split: str):
    from sts.data.readers import read_pairs
    from sts.resources import resource as res

    return read_pairs(res(f"stsb/sts-{split}.csv"), "stsb")


def repeated_pairs(n: int = 20_000, pool: int = 400, seed: int = 0) -> tuple[list[str], list[str]]:
    test = stsb("test")
    sentences = list(dict.fromkeys(test.sentence1 + test.sentence2))
    rng = np.random.default_rng(seed)
    chosen = [sentences[i] for i in rng.choice(len(sentences), pool, replace=False)]
    return [chosen[i] for i in rng.integers(0, pool, n)], [chosen[i] for i in rng.integers(0, pool, n)]


def pairs_for(case: str, quick: bool) -> tuple[list[str], list[str]]:
    if "repeated" in case:
        s1, s2 = repeated_pairs()
        return (s1[:5000], s2[:5000]) if quick else (s1, s2)
    test = stsb("test")
    return test.sentence1, test.sentence2


# ---------------------------------------------------------------- workers
def timed(fn, repeats: int) -> list[float]:
    """Wall time of `fn` per repeat, after one warm-up; `fn` may return its own measured seconds."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        measured = fn()
        times.append(measured if isinstance(measured, float) else time.perf_counter() - start)
    return times


SKIP_STEPS = 2  # steps excluded from a training measurement: set-up, first-batch allocations


class StepClock:
    """Seconds from the start of step SKIP_STEPS to the end of the last step: the steady training
    loop, without either framework's one-off set-up (model load, tokenising, Trainer start-up)."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.end = 0.0

    def step_started(self) -> None:
        self.starts.append(time.perf_counter())

    def step_ended(self) -> None:
        self.end = time.perf_counter()

    def seconds(self) -> float:
        return self.end - self.starts[SKIP_STEPS]


def train_precision(args: argparse.Namespace, variant: str | None) -> list[str]:
    """Our trainer's precision override: none for the default row (trainer=default picks
    bf16-mixed on hardware with native bf16), 32-true for the fp32 row, or what --precision says."""
    if variant == "fp32" or args.precision == "fp32":
        return ["trainer.precision=32-true"]
    return ["trainer.precision=bf16-mixed"] if args.precision == "bf16" else []


def train_ours(arch: str, args: argparse.Namespace, variant: str | None = None) -> list[float]:
    from sts.config import compose
    from sts.training.fit import build_model, build_task, build_trainer

    import lightning as L

    class Clock(L.Callback):
        def __init__(self) -> None:
            self.clock = StepClock()

        def on_train_batch_start(self, *args: object) -> None:
            self.clock.step_started()

        def on_train_batch_end(self, *args: object) -> None:
            self.clock.step_ended()

    def once() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = compose("train", [
                f"model={arch}_encoder", "seed=0", f"data.batch_size={args.batch_size}", f"encoder.max_length={args.max_length}",
                f"trainer.max_steps={args.steps}", "trainer.limit_val_batches=0", "logger=none", "callbacks=none",
                "trainer.enable_progress_bar=false", f"trainer.accelerator={args.device}",
                *train_precision(args, variant),
                *(["encoder.packed_dropout=false"] if variant == "torchdropout" else []),
                "model.head_lr=2e-5",
            ], tmp)
            from hydra.utils import instantiate

            model = build_task(cfg, build_model(cfg))
            dm = instantiate(cfg.data)
            dm.attach(model.model.inputs, ranks_within_batch=bool(getattr(model.loss_fn, "ranks_within_batch", False)))
            trainer = build_trainer(cfg)
            clock = Clock()
            trainer.callbacks.append(clock)
            trainer.fit(model, datamodule=dm)
            return clock.clock.seconds()

    return timed(once, args.repeats)


def train_peer(arch: str, args: argparse.Namespace) -> list[float]:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

    train = stsb("train")
    data = Dataset.from_dict({"sentence1": train.sentence1, "sentence2": train.sentence2, "score": train.gold.tolist()})

    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.clock = StepClock()

        def on_step_begin(self, *args: object, **kwargs: object) -> None:
            self.clock.step_started()

        def on_step_end(self, *args: object, **kwargs: object) -> None:
            self.clock.step_ended()

    def once() -> float:
        clock = Clock()
        with tempfile.TemporaryDirectory() as tmp:
            common = dict(output_dir=tmp, max_steps=args.steps, per_device_train_batch_size=args.batch_size, learning_rate=2e-5,
                          warmup_ratio=0.1, seed=0, save_strategy="no", report_to="none", use_cpu=args.device == "cpu",
                          bf16=args.precision == "bf16", disable_tqdm=True)
            if arch == "bi":
                model = SentenceTransformer(args.models["bi_st"], device=args.device)
                model.max_seq_length = args.max_length
                trainer = SentenceTransformerTrainer(model=model, args=SentenceTransformerTrainingArguments(**common), train_dataset=data, loss=CosineSimilarityLoss(model), callbacks=[clock])
            else:
                model = CrossEncoder(args.models["cross_st"], num_labels=1, max_length=args.max_length, device=args.device)
                trainer = CrossEncoderTrainer(model=model, args=CrossEncoderTrainingArguments(**common), train_dataset=data, loss=BinaryCrossEntropyLoss(model), callbacks=[clock])
            trainer.train()
        return clock.clock.seconds()

    return timed(once, args.repeats)


def predict_ours(arch: str, case: str, args: argparse.Namespace, variant: str | None = None) -> tuple[list[float], np.ndarray]:
    import sts

    precision, backend, quantize = SCORING_VARIANTS[variant] if variant else (args.precision, "auto", None)
    model = sts.load(args.models[f"{arch}_pt"], batch_size=args.batch_size_eval, precision=precision, device=args.device, backend=backend, quantize=quantize)
    args.ran = f"{model.info['backend']} {model.info['precision']}"  # what backend=auto and OpenVINO chose
    weights = getattr(model.scorer.encode, "weights", None)  # ONNX Runtime's int8 weights on this CPU
    if model.info["backend"] == "onnx" and model.info["precision"] == "int8" and weights:
        args.ran += f" {weights}"
    s1, s2 = pairs_for(case, args.quick)
    result: dict[str, np.ndarray] = {}
    times = timed(lambda: result.__setitem__("scores", model.score(s1, s2, clip=False)), args.repeats)
    return times, result["scores"]


def predict_peer(arch: str, case: str, args: argparse.Namespace) -> tuple[list[float], np.ndarray]:
    s1, s2 = pairs_for(case, args.quick)
    result: dict[str, np.ndarray] = {}
    if arch == "bi":
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(args.models.get("bi_st_trained", args.models["bi_st"]), device=args.device)
        model.max_seq_length = args.max_length

        def once() -> None:
            u = model.encode(s1, batch_size=args.batch_size_eval, convert_to_tensor=True)
            v = model.encode(s2, batch_size=args.batch_size_eval, convert_to_tensor=True)
            result["scores"] = torch.nn.functional.cosine_similarity(u, v).float().cpu().numpy()
    else:
        from sentence_transformers.cross_encoder import CrossEncoder

        model = CrossEncoder(args.models["cross_st"], max_length=args.max_length, device=args.device)

        def once() -> None:
            result["scores"] = np.asarray(model.predict(list(zip(s1, s2)), batch_size=args.batch_size_eval), dtype=np.float32)

    ctx = torch.autocast(args.device, dtype=torch.bfloat16) if args.precision == "bf16" else torch.inference_mode()  # auto: the peer's own fp32
    with ctx:
        times = timed(once, args.repeats)
    return times, result["scores"]


def worker(case: str, args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.as_host:
        from sts.core import precision

        for name, value in AS_HOST[args.as_host].items():
            setattr(precision, name, lambda *a, value=value: value)
    parts = case.split("_")
    kind, arch = parts[0], parts[1]
    who = "peer" if case.endswith("_peer") else "ours"
    variant = case.split("_ours")[1].lstrip("_") or None if who == "ours" else None  # e.g. openvino_fp32
    scores = None
    if kind == "train":
        times = train_ours(arch, args, variant) if who == "ours" else train_peer(arch, args)
        items = (args.steps - SKIP_STEPS) * args.batch_size
    else:
        times, scores = predict_ours(arch, case, args, variant) if who == "ours" else predict_peer(arch, case, args)
        items = len(scores)
    out = {"case": case, "times": times, "items": items, "per_s": [items / t for t in times], "ran": getattr(args, "ran", None),
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if scores is not None:
        path = Path(args.workdir) / f"{case}.npy"
        np.save(path, scores)
        out["scores"] = str(path)
    return out


# ---------------------------------------------------------------- parent
def prepare_models(workdir: Path, args: argparse.Namespace) -> dict[str, str]:
    """Untrained models built the way train.py builds them, saved as our checkpoints, plus the
    sentence-transformers folders holding the very same weights."""
    from sts.io import checkpoint
    from sts.config import compose
    from sts.io.export import save_sentence_transformers
    from sts.io.encoders import resolve
    from sts.training.fit import build_model

    models = {"bi_st": resolve(None)}
    for arch in ("bi", "cross"):
        torch.manual_seed(0)
        cfg = compose("train", [f"model={arch}_encoder", f"encoder.max_length={args.max_length}"], workdir)
        path = checkpoint.save(build_model(cfg), workdir / f"{arch}.pt")
        models[f"{arch}_pt"] = str(path)
    if args.cross_model:
        models["cross_pt"] = args.cross_model
    models["cross_st"] = str(workdir / "cross_st")
    (workdir / "cross_st").mkdir()
    save_sentence_transformers(checkpoint.load(models["cross_pt"]), workdir / "cross_st")
    if args.bi_model:  # scored with the same trained weights on both sides; training starts from the untrained MiniLM
        models["bi_pt"], models["bi_st_trained"] = args.bi_model, str(workdir / "bi_st_trained")
        (workdir / "bi_st_trained").mkdir()
        save_sentence_transformers(checkpoint.load(args.bi_model), workdir / "bi_st_trained")
    return models


def spearman_x100(scores: np.ndarray, gold: np.ndarray) -> float:
    from sts.core.metrics import pair_metrics

    return 100 * pair_metrics(torch.as_tensor(scores), torch.as_tensor(gold), 0.8, 0.5)["spearman"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps and pairs: under 5 minutes on 2 CPU cores")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto", help="ours; the peer stays fp32 unless bf16")
    parser.add_argument("--cross-model", help="a trained cross-encoder model.pt (scoring cases; training starts from the untrained one)")
    parser.add_argument("--bi-model", help="a trained bi-encoder model.pt (scoring cases, both sides; training starts from the untrained MiniLM)")
    parser.add_argument("--as-host", choices=sorted(AS_HOST), help="our hardware checks see this host kind (cap the runtimes to it: ONEDNN_MAX_CPU_ISA)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batch-size", type=int, default=16, help="training batch size")
    parser.add_argument("--batch-size-eval", type=int, default=64, help="scoring batch size")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per training repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", nargs="*", default=CASES)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--models", type=json.loads, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.steps = max(args.steps or (10 if args.quick else 40), SKIP_STEPS + 1)
    if args.device != "cpu":  # backend=onnx and openvino are CPU backends
        args.cases = [c for c in args.cases if "int8" not in c and "openvino" not in c]
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, args)), flush=True)
        return

    command = "python experiments/bench_throughput.py " + " ".join(sys.argv[1:])
    with tempfile.TemporaryDirectory() as tmp:
        models = prepare_models(Path(tmp), args)
        results = {}
        for case in args.cases:
            cmd = [sys.executable, __file__, "--worker", case, "--workdir", tmp, "--models", json.dumps(models)]
            cmd += [f"--precision={args.precision}", f"--device={args.device}", f"--threads={args.threads}", f"--batch-size={args.batch_size}",
                    f"--batch-size-eval={args.batch_size_eval}", f"--max-length={args.max_length}", f"--steps={args.steps}", f"--repeats={args.repeats}"]
            cmd += [f"--as-host={args.as_host}"] if args.as_host else []
            if args.quick:
                cmd.append("--quick")
            proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, TOKENIZERS_PARALLELISM="false", STS_CACHE=tmp))
            line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
            if line is None:
                sys.exit(f"worker {case} failed:\n{proc.stderr[-3000:]}")
            results[case] = json.loads(line[len("RESULT "):])
            print(f"{case}: median {statistics.median(results[case]['per_s']):.1f} pairs/s", file=sys.stderr, flush=True)
        scores = {c: np.load(r["scores"]) for c, r in results.items() if "scores" in r}

    host = provenance.cpu()
    kind = "amx" if host["amx"] and not args.as_host else "any"
    summary: dict[str, object] = {"precision": args.precision, "device": args.device, "threads": args.threads, "quick": args.quick,
                                  "host": {"cpu": host["model"], "amx": host["amx"], "avx512_bf16": "avx512_bf16" in host["flags"], "vnni": "avx512_vnni" in host["flags"],
                                           "flags": host["flags"], "as_host": args.as_host, "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA")},
                                  "bi_model": args.bi_model, "cross_model": args.cross_model}
    gold = stsb("test").gold
    reference = {arch: spearman_x100(scores[f"predict_{arch}_stsb_peer"], gold) for arch in ("bi", "cross") if f"predict_{arch}_stsb_peer" in scores}
    rows = [["case", "ours runs", "ours pairs/s", "peer pairs/s", "ratio ours/peer", "target here", "STS-B drop", "ours peak RSS MB", "peer peak RSS MB"]]
    for case in [c for c in args.cases if "_ours" in c]:
        key, variant = case.split("_ours")[0], case.split("_ours")[1].lstrip("_")
        ours, peer = results.get(case), results.get(f"{key}_peer")
        if not ours or not peer:
            continue
        name = key + (f"_{variant}" if variant else "")
        o, p = statistics.median(ours["per_s"]), statistics.median(peer["per_s"])
        entry = {"ours": round(o, 2), "peer": round(p, 2), "ratio": round(o / p, 3), "ours_peak_rss_mb": round(ours["peak_rss_mb"]), "peer_peak_rss_mb": round(peer["peak_rss_mb"]),
                 "ran": ours.get("ran")}
        drop = ""
        if case in scores and key.endswith("_stsb"):
            arch = key.split("_")[1]
            entry["spearman_drop"] = round(reference[arch] - spearman_x100(scores[case], gold), 3)
            drop = f"{entry['spearman_drop']:.2f}"
            if not variant:
                summary[f"spearman_drop_{arch}"] = entry["spearman_drop"]
        if case in scores:
            summary[f"max_abs_diff_{name.removeprefix('predict_')}"] = float(np.max(np.abs(scores[case] - scores[f"{key}_peer"])))
        target = TARGETS[kind].get(key) if not variant else None
        summary[name] = entry
        rows.append([name, ours.get("ran") or "", f"{o:.1f}", f"{p:.1f}", f"{o / p:.2f}", f">= {target}" if target else "", drop, f"{ours['peak_rss_mb']:.0f}", f"{peer['peak_rss_mb']:.0f}"])
    import sentence_transformers

    print(command)
    print(f"hardware: {provenance.hardware()}; device {args.device}; ours precision {args.precision}")
    if args.as_host:
        print(f"host: emulating a {args.as_host} host on this one: our hardware checks see {AS_HOST[args.as_host]}, ONEDNN_MAX_CPU_ISA="
              f"{os.environ.get('ONEDNN_MAX_CPU_ISA')} caps oneDNN (OpenVINO's kernels, torch's oneDNN ops); MKL's fp32 products (both sides' torch) "
              "are this CPU's; the any-host targets apply (issues 22, 31)")
    else:
        print(f"host: {'AMX: the AMX targets apply' if host['amx'] else 'no AMX: the any-host targets apply; the AMX rows need an AMX host'} (issues 22, 31)")
    print(f"versions: {provenance.versions() | {'sentence_transformers': sentence_transformers.__version__}}; git {provenance.git_commit()}")
    print(f"training: {args.steps} optimizer steps x batch {args.batch_size}; scoring batch {args.batch_size_eval}; max_length {args.max_length}; "
          f"{args.repeats} timed repeats after 1 warm-up (medians); cross-encoder: {args.cross_model or 'untrained (drops mean little)'}; "
          f"bi-encoder scored: {args.bi_model or 'the untrained MiniLM'}")
    print("STS-B test Spearman x100 with fp32 (the peer's scores): " + ", ".join(f"{a} {v:.2f}" for a, v in reference.items()))
    print(format_table(rows))
    for key, value in summary.items():
        if key.startswith("max_abs_diff"):
            print(f"{key}: {value:.2e}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
