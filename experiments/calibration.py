"""Which probability calibration, measured: ECE and Brier score before and after, per model and split.

    python experiments/calibration.py --msrp ../shared/data/msrp/msr_paraphrase_train.txt \
        [--ckpt /work/runs/cross_from_sick/seed0/model.pt ...]

For the bundled model (always) and each --ckpt: raw scores (fp32, torch) on STS-B dev and test
(bundled copies) and MSRP train; "similar" = gold >= 4 of 5 (MSRP: its paraphrase label). Each
candidate map (sts.core.calibration.CANDIDATES: Platt on the logit, Platt on the score, isotonic
on the score) is judged on dev by 5-fold cross-fitting (fit on 4/5 of dev, score the held-out
fifth), then fitted on all of dev and measured on test and MSRP. `fit_model` (what training and
sts.commands.calibrate fit) picks the lowest cross-fitted dev ECE (printed last per model); the
model file's own calibration, if any, is measured through sts.load(calibrated=True) too.
ECE over 15 equal-width probability bins.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sts  # noqa: E402
from sts.core import calibration as C  # noqa: E402
from sts.core import provenance  # noqa: E402
from sts.data.readers import read_pairs  # noqa: E402
from sts.data.terminal import format_table  # noqa: E402
from sts.resources import resource  # noqa: E402

def measure(name: str, path: str | None, msrp: Path | None) -> list[list[str]]:
    model = sts.load(path, precision="fp32", backend="torch")
    sets = {"dev": (resource("stsb/sts-dev.csv"), "stsb", (0, 5), 0.8), "test": (resource("stsb/sts-test.csv"), "stsb", (0, 5), 0.8)}
    if msrp is not None:
        sets["msrp train"] = (msrp, "msrp", None, 0.5)
    scores, positive = {}, {}
    for split, (file, fmt, score_range, cut) in sets.items():
        pairs = read_pairs(file, fmt, score_range)
        scores[split] = torch.from_numpy(model.score(pairs.sentence1, pairs.sentence2, clip=False))
        positive[split] = torch.from_numpy(pairs.gold >= cut)
    print(f"{name}: {type(model.module).__name__}, share similar: " + ", ".join(f"{s} {float(p.double().mean()):.3f}" for s, p in positive.items()))
    rows = []

    def row(label: str, dev: torch.Tensor, calibration: C.Calibration | None) -> list[str]:
        out = [name, label, f"{C.ece(dev, positive['dev']):.4f}", f"{C.brier(dev, positive['dev']):.4f}"]
        for split in list(sets)[1:]:
            p = C.probabilities(scores[split]) if calibration is None else calibration(scores[split])
            out += [f"{C.ece(p, positive[split]):.4f}", f"{C.brier(p, positive[split]):.4f}"]
        return out

    rows.append(row("raw score (clipped to 0-1)", C.probabilities(scores["dev"]), None))
    for method, input_ in C.CANDIDATES:
        held_out = C.cross_fitted(scores["dev"], positive["dev"], method, input_)
        rows.append(row(f"{method} on the {input_}", held_out, C.fit(scores["dev"], positive["dev"], method, input_)))
    chosen = C.fit_model(scores["dev"], positive["dev"], "dev")
    rows.append(row(f"chosen: {chosen.method} on the {chosen.input} (dev in-sample)", chosen(scores["dev"]), chosen))
    if model.module.calibration is None:
        print(f"  {name}: the file has no calibration of its own")
    else:
        calibrated = sts.load(path, precision="fp32", backend="torch", calibrated=True)
        test = read_pairs(resource("stsb/sts-test.csv"), "stsb", (0, 5))
        shipped = C.ece(torch.from_numpy(calibrated.score(test.sentence1, test.sentence2)).double(), positive["test"])
        print(f"  {name}: its own calibration ({calibrated.module.calibration.describe()}): test ECE {shipped:.4f} of sts.load(calibrated=True).score")
    mean = float(chosen(scores["test"]).mean())
    print(f"  {name}: mean probability on test {mean:.3f} vs share similar {float(positive['test'].double().mean()):.3f} (dev {float(positive['dev'].double().mean()):.3f})")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", nargs="*", default=[], help="model files to measure besides the bundled model")
    parser.add_argument("--msrp", type=Path, default=None, help="MSRP's msr_paraphrase_train.txt (the publisher's file)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"host: {provenance.hardware()}")
    print(f"command: {provenance.command()}")
    print(f"git commit: {provenance.git_commit()}")
    print("ECE: 15 equal-width bins of the probability; dev figures of the candidates are 5-fold cross-fitted within dev\n")
    header = ["model", "probability", "dev ECE", "dev Brier", "test ECE", "test Brier", *(["msrp ECE", "msrp Brier"] if args.msrp else [])]
    rows = [header]
    for path in [None, *args.ckpt]:
        rows += measure("bundled" if path is None else "/".join(Path(path).parts[-3:]), path, args.msrp)
    print()
    print(format_table(rows, title="calibration: ECE and Brier score (lower is better)"))


if __name__ == "__main__":
    main()
