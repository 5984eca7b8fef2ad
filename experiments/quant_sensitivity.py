"""Where int8 loses STS-B Spearman: per-layer sensitivity of the exported graph, and the candidate
int8 recipes, measured on STS-B dev (model selection) and reported on test.

    python experiments/quant_sensitivity.py MODEL.pt|bundled [--split dev] [--out FILE]

Sensitivity: ONNX Runtime dynamic int8 (per-channel weights, as backend=onnx) applied to ONE group
of matrix products at a time, the rest fp32; the drop against the fp32 graph says what each group
costs. Groups: the Q/K/V projections, the attention output projection, the FFN's first (intermediate)
and second (output) products, and the pooler/head. Recipes: ORT dynamic int8 of everything, and
OpenVINO int8 through NNCF post-training quantization (`sts.core.backends.OpenVinoEncoder` with
quantize=static: the recipe backend=openvino uses), with and without SmoothQuant and with the
sensitive groups kept in fp32. Each row prints the Spearman x100, its drop and the pairs/s of one
scoring pass of the split (2 threads; a rough speed, the benchmark is bench_throughput.py).
The host's CPU model and flags are printed first; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sts  # noqa: E402
from sts.core import backends  # noqa: E402
from sts.core import provenance  # noqa: E402
from sts.data.readers import read_pairs  # noqa: E402
from sts.resources import resource  # noqa: E402

GROUPS = {
    "qkv": r"/attention/self/(query|key|value)/",
    "attn_out": r"/attention/output/dense/",
    "ffn_in": r"/intermediate/dense/",
    "ffn_out": r"/layer\.\d+/output/dense/",
}  # "head": every other product with a weight (the pooler, a cross-encoder's head)


def spearman(scores: np.ndarray, gold: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(scores, gold).statistic * 100)


class OrtRunner:
    """features -> tensor through an ONNX Runtime session on `path` (as backends.OnnxEncoder)."""

    def __init__(self, path: Path, names: list[str]) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
        self.session, self.names = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]), names

    def __call__(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {n: features[n].numpy() for n in self.names})[0])


def matmuls(path: Path) -> dict[str, list[str]]:
    """Weight MatMul node names of the fp32 graph by group."""
    import onnx

    nodes = backends.matmuls(onnx.load(str(path)).graph)[0]
    groups = {g: [n for n in nodes if re.search(p, n)] for g, p in GROUPS.items()}
    groups["head"] = [n for n in nodes if not any(n in v for v in groups.values())]
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a model.pt, or 'bundled'")
    parser.add_argument("--split", default="dev", choices=["dev", "test"])
    parser.add_argument("--out", help="also write the output here")
    parser.add_argument("--skip-sensitivity", action="store_true")
    parser.add_argument("--skip-openvino", action="store_true", help="ONNX Runtime rows only")
    args = parser.parse_args()
    torch.set_num_threads(2)
    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    host = provenance.cpu()
    say(f"command: python {' '.join(sys.argv)}")
    say(f"host: {host['model']} [{' '.join(f for f in host['flags'] if f.startswith(('amx', 'avx')))}], torch threads {torch.get_num_threads()}, git {provenance.git_commit()}")
    data = read_pairs(resource(f"stsb/sts-{args.split}.csv"), "stsb")
    s1, s2, gold = data.sentence1, data.sentence2, np.asarray(data.gold)
    source = None if args.model == "bundled" else args.model
    model = sts.load(source, precision="fp32")
    module = model.module
    results: dict[str, dict] = {}

    def measure(name: str, encode=None, precision: str = "fp32") -> None:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else torch.no_grad():
            scores = module.score_texts(s1, s2, 64, clip=False, encode=encode)
        seconds = time.perf_counter() - start
        rho = spearman(scores, gold)
        base = results.get("fp32", {}).get("spearman", rho)
        results[name] = {"spearman": round(rho, 3), "drop": round(base - rho, 3), "pairs_per_s": round(len(s1) / seconds, 1)}
        say(f"{name:40s} spearman {rho:7.3f}  drop {base - rho:6.3f}  {len(s1) / seconds:8.1f} pairs/s")

    with torch.no_grad():
        measure("fp32")
        with tempfile.TemporaryDirectory() as tmp:
            graph = backends.GraphEncoder(module, "none")
            fp32 = graph._export_and_quantize(Path(tmp))
            groups = matmuls(fp32)
            say("groups: " + ", ".join(f"{g} {len(v)}" for g, v in groups.items()))
            from onnxruntime.quantization import QuantType, quantize_dynamic

            def dynamic(name: str, nodes: list[str] | None, exclude: list[str] | None = None, reduce_range: bool = False, weights=QuantType.QInt8) -> None:
                out = Path(tmp) / f"{name}.onnx"
                quantize_dynamic(str(fp32), str(out), weight_type=weights, per_channel=True, reduce_range=reduce_range, op_types_to_quantize=["MatMul"],
                                 nodes_to_quantize=nodes, nodes_to_exclude=exclude)
                measure(name, OrtRunner(out, graph.names))

            dynamic("ort_dynamic_all", None)
            # without VNNI, ONNX Runtime's u8 x s8 kernel sums pairs of products in 16 bits (vpmaddubsw),
            # which saturates; 7-bit weights (reduce_range) or u8 weights avoid it (ONNX Runtime's docs)
            dynamic("ort_dynamic_reduce_range", None, reduce_range=True)
            dynamic("ort_dynamic_u8u8", None, weights=QuantType.QUInt8)
            dynamic("ort_dynamic_reduce_range_keep_ffn_out", None, groups["ffn_out"], reduce_range=True)
            dynamic("ort_dynamic_reduce_range_keep_head", None, groups["head"], reduce_range=True)
            if not args.skip_sensitivity:
                for group, nodes in groups.items():
                    if nodes:
                        dynamic(f"ort_dynamic_only_{group}", nodes)
                for group, nodes in groups.items():
                    if nodes:
                        dynamic(f"ort_dynamic_all_but_{group}", None, nodes)
            if not args.skip_openvino:
                import openvino as ov

                class OvRunner:
                    def __init__(self, path: Path) -> None:
                        self.compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2})

                    def __call__(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
                        return torch.from_numpy(np.asarray(self.compiled({n: features[n].numpy() for n in graph.names})[0]))

                measure("ov_fp32", OvRunner(fp32))
                recipes = [("ov_nncf", {}), ("ov_nncf_sq0.5", {"smooth_quant": 0.5}), ("ov_nncf_no_sq", {"smooth_quant": -1}),
                           ("ov_nncf_keep_ffn_out", {"ignored": groups["ffn_out"]}), ("ov_nncf_keep_last_ffn_out", {"ignored": groups["ffn_out"][-1:]}),
                           ("ov_nncf_bias_correction", {"fast_bias_correction": False}), ("ov_nncf_keep_head", {"ignored": groups["head"]})]
                for name, options in recipes:
                    folder = Path(tmp) / name
                    folder.mkdir()
                    measure(name, OvRunner(graph._quantize_nncf(fp32, folder, **options)))
    say(json.dumps({"model": args.model, "split": args.split, "host": host["model"], "results": results}))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
