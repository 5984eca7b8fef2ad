"""How close our CPU scoring is to what the cores can do, and what lower precision would cost.

    python experiments/bench_cpu_ceiling.py [--ckpt MODEL.pt ...] [--threads 2]

1. Matrix-product throughput (GFLOP/s) at the encoder's shapes in fp32, bf16 and fp16: the
   ceiling for any scorer on this CPU, since linear layers are nearly all of the arithmetic.
2. Our scoring path (`sts.core.scorer.Scorer`, as predict.py runs it) on STS-B test: pairs/s, share of
   time inside linear layers (torch profiler), and the GFLOP/s those layers reached.
3. For each checkpoint (the untrained bundled encoder when none is given): dynamic int8
   quantisation of the attention projections, or of every linear layer, vs fp32: speed and the
   STS-B dev/test Spearman change (why `predict.py` keeps fp32 by default).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_throughput import timed  # noqa: E402  (same warm-up + repeats as the throughput benchmark)
from sts.io import checkpoint  # noqa: E402
from sts.core import provenance  # noqa: E402
from sts.data.terminal import format_table  # noqa: E402
from sts.data.readers import read_pairs  # noqa: E402
from sts.resources import resource  # noqa: E402
from sts.core.scorer import Scorer  # noqa: E402

SCOPES = {"int8 attention": ("query", "key", "value", "attention.output.dense"), "int8 all linear": ("",)}


def gemm_rates(hidden: int, ffn: int, rows: int = 896, seconds: float = 0.5) -> list[list[str]]:
    table = [["dtype", *(f"{rows}x{k} @ {k}x{n}" for k, n in ((hidden, hidden), (hidden, ffn), (ffn, hidden)))]]
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        row = [str(dtype).removeprefix("torch.")]
        for k, n in ((hidden, hidden), (hidden, ffn), (ffn, hidden)):
            a, w, b = torch.randn(rows, k, dtype=dtype), torch.randn(n, k, dtype=dtype), torch.randn(n, dtype=dtype)
            for _ in range(3):
                torch.nn.functional.linear(a, w, b)
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                torch.nn.functional.linear(a, w, b)
                count += 1
            row.append(f"{2 * rows * k * n * count / (time.perf_counter() - start) / 1e9:.0f} GFLOP/s")
        table.append(row)
    return table


def linear_flops(module: torch.nn.Module, tokens: int) -> float:
    return 2.0 * tokens * sum(m.in_features * m.out_features for m in module.encoder.modules() if isinstance(m, torch.nn.Linear))


def quantized(module, suffixes: tuple[str, ...]):
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    m = copy.deepcopy(module)
    targets = {n: per_channel_dynamic_qconfig for n, layer in m.encoder.named_modules() if isinstance(layer, torch.nn.Linear) and n.endswith(suffixes)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.encoder = quantize_dynamic(m.encoder, targets)
    return m


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", nargs="*", default=[])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("python experiments/bench_cpu_ceiling.py " + " ".join(sys.argv[1:]))
    print(f"hardware: {provenance.hardware()}; torch threads {args.threads}; torch {torch.__version__}; git {provenance.git_commit()}")
    data = {split: read_pairs(resource(f"stsb/sts-{split}.csv"), "stsb") for split in ("dev", "test")}
    test = data["test"]

    with tempfile.TemporaryDirectory() as tmp:
        ckpts = list(args.ckpt)
        if not ckpts:
            from sts.config import compose
            from sts.training.fit import build_model

            torch.manual_seed(0)
            ckpts = [str(checkpoint.save(build_model(compose("train", [], tmp)), Path(tmp) / "zero_shot.pt"))]
        base = checkpoint.load(ckpts[0])
        cfg = base.encoder.config
        print("\n1. matrix products at the encoder's shapes (one linear layer, median-free: a 0.5 s loop each)")
        print(format_table(gemm_rates(cfg.hidden_size, cfg.intermediate_size)))

        scorer = Scorer(base, 64)
        seconds = statistics.median(timed(lambda: scorer(test.sentence1, test.sentence2), args.repeats))
        unique = list(dict.fromkeys([*test.sentence1, *test.sentence2]))
        tokens = sum(len(ids) for ids in base.tokenizer(unique, truncation=True, max_length=base.max_length)["input_ids"])
        with torch.profiler.profile() as prof:
            scorer(test.sentence1, test.sentence2)
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        linear = sum(e.self_cpu_time_total for e in events if e.key in ("aten::addmm", "aten::mm", "aten::linear"))
        print(f"\n2. Scorer (fp32, batch 64) on STS-B test: {len(test)} pairs, {len(unique)} distinct sentences, {tokens} tokens")
        print(f"   {len(test) / seconds:.1f} pairs/s (median of {args.repeats}); {100 * linear / total:.0f}% of operator time in linear layers (addmm), "
              f"which ran at {linear_flops(base, tokens) / (linear / 1e6) / 1e9:.0f} GFLOP/s")

        print("\n3. dynamic int8 vs fp32 (Spearman x 100; drop = fp32 - int8; speed on STS-B test)")
        rows = [["checkpoint", "variant", "dev", "dev drop", "test", "test drop", "max |diff|", "pairs/s", "speed-up"]]
        for path in ckpts:
            module = base if path == ckpts[0] else checkpoint.load(path)
            name = Path(path).parent.parent.name + "/" + Path(path).parent.name if args.ckpt else "zero-shot (bundled)"
            fp32 = Scorer(module, 64)
            ref = {s: fp32(d.sentence1, d.sentence2, clip=False) for s, d in data.items()}
            fp32_s = statistics.median(timed(lambda: fp32(test.sentence1, test.sentence2), args.repeats))
            rho = {s: 100 * spearmanr(ref[s], d.gold)[0] for s, d in data.items()}
            rows.append([name, "fp32", f"{rho['dev']:.2f}", "", f"{rho['test']:.2f}", "", "", f"{len(test) / fp32_s:.1f}", "1.00"])
            for variant, suffixes in SCOPES.items():
                q = Scorer(quantized(module, suffixes), 64)
                got = {s: q(d.sentence1, d.sentence2, clip=False) for s, d in data.items()}
                r = {s: 100 * spearmanr(got[s], d.gold)[0] for s, d in data.items()}
                s = statistics.median(timed(lambda: q(test.sentence1, test.sentence2), args.repeats))
                diff = max(float(np.abs(got[k] - ref[k]).max()) for k in got)
                rows.append([name, variant, f"{r['dev']:.2f}", f"{rho['dev'] - r['dev']:+.2f}", f"{r['test']:.2f}", f"{rho['test'] - r['test']:+.2f}",
                             f"{diff:.3f}", f"{len(test) / s:.1f}", f"{fp32_s / s:.2f}"])
        print(format_table(rows))


if __name__ == "__main__":
    main()
