"""Other fp32 runtimes for the bi-encoder's embedding pass, against ours, on the STS-B test sentences.

    python experiments/bench_runtimes.py [--ckpt MODEL.pt] [--threads 2] [--repeats 3]

Each runs the same length-sorted batches of 64 distinct sentences that `predict.py` runs:
- torch eager (ours: `BiEncoder.embed`, SDPA attention);
- ONNX Runtime on the exported graph (SDPA), and on the graph exported with eager attention after
  onnxruntime.transformers' BERT fusions (Attention, SkipLayerNormalization, BiasGelu);
- torch.compile (inductor, weight freezing and prepacking, dynamic shapes), with its compile time.
Medians of `--repeats` after a warm-up, sentences/s, and the largest embedding difference from ours.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_throughput import stsb, timed  # noqa: E402
from sts.io import checkpoint  # noqa: E402
from sts.core import provenance  # noqa: E402
from sts.core.inputs import FIRST  # noqa: E402
from sts.core.backends import export_graph  # noqa: E402  (the one exporter: the backends' and export.py's)
from sts.data.terminal import format_table  # noqa: E402


def ort_runner(path: Path, threads: int) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda f: torch.from_numpy(session.run(None, {"input_ids": f["input_ids"].numpy(), "attention_mask": f["attention_mask"].numpy()})[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", default="experiments/runs/bi_cosine_3ep/seed0/model.pt")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("python experiments/bench_runtimes.py " + " ".join(sys.argv[1:]))
    print(f"hardware: {provenance.hardware()}; threads {args.threads}; torch {torch.__version__}; git {provenance.git_commit()}")
    module = checkpoint.load(args.ckpt).eval()
    test = stsb("test")
    unique = list(dict.fromkeys(test.sentence1 + test.sentence2))
    encodings = module.inputs.texts(unique)
    print(f"checkpoint {args.ckpt}; STS-B test: {len(unique)} distinct sentences, batches of 64 sorted by length")

    def embed_all(fn: Callable[[dict[str, torch.Tensor]], torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode():
            return module.inputs.by_length({FIRST: encodings}, 64, lambda batch: fn(batch[FIRST]), module.device)

    reference = embed_all(module.embed)
    runners: list[tuple[str, Callable, str]] = [("torch eager (ours)", module.embed, "")]
    folder = Path(tempfile.mkdtemp(prefix="bench-runtimes-"))
    export_graph(module, folder / "sdpa.onnx")
    runners.append(("onnxruntime, exported graph", ort_runner(folder / "sdpa.onnx", args.threads), ""))
    from onnxruntime.transformers import optimizer

    module.encoder.set_attn_implementation("eager")  # the attention pattern the fusions recognise
    export_graph(module, folder / "eager.onnx")
    module.encoder.set_attn_implementation("sdpa")
    cfg = module.encoder.config
    fused = optimizer.optimize_model(str(folder / "eager.onnx"), model_type="bert", num_heads=cfg.num_attention_heads, hidden_size=cfg.hidden_size, opt_level=0)
    counts = {k: v for k, v in fused.get_fused_operator_statistics().items() if v}
    fused.save_model_to_file(str(folder / "fused.onnx"))
    runners.append(("onnxruntime, BERT fusions", ort_runner(folder / "fused.onnx", args.threads), " ".join(f"{k} {v}" for k, v in counts.items())))
    import torch._inductor.config as inductor

    inductor.freezing = True
    inductor.cpp.weight_prepack = True
    compiled = torch.compile(module.embed, dynamic=True)
    started = time.perf_counter()
    with torch.no_grad():  # freezing needs no_grad, not inference_mode, while compiling
        module.inputs.by_length({FIRST: encodings}, 64, lambda batch: compiled(batch[FIRST]), module.device)
    runners.append(("torch.compile (inductor, freezing)", compiled, f"compile + first pass {time.perf_counter() - started:.1f} s"))

    rows = [["runtime", "sentences/s", "vs ours", "max |diff|", "note"]]
    base = None
    for name, fn, note in runners:
        result: dict[str, torch.Tensor] = {}
        seconds = float(np.median(timed(lambda: result.__setitem__("out", embed_all(fn)), args.repeats)))
        rate = len(unique) / seconds
        base = base or rate
        rows.append([name, f"{rate:.1f}", f"{rate / base:.2f}", f"{(result['out'] - reference).abs().max().item():.1e}", note])
    print(format_table(rows))


if __name__ == "__main__":
    main()
