"""The docs' figures, drawn from the recorded files at build time (SVG, no timestamps, so a
rebuild from the same files gives the same bytes)."""
from __future__ import annotations

import io
from collections.abc import Callable

from docgen.bench import host_kind, read
from docgen.results import runs, spread

# the frozen-vs-fine-tuned grid (sts/conf/experiment/frozen_vs_finetuned.yaml) and the untrained encoder
FROZEN_VS_FINETUNED = ("zero_shot", "bi_frozen_mlp", "bi_finetuned_cosine", "cross_frozen_cls", "cross_finetuned")
# scoring benchmarks of the same trained models on each host kind, and the cases drawn
SPEED_FILES = ("scoring-trained-amx-b44e61a", "scoring-trained-vnni-b44e61a", "scoring-trained-avx2-b44e61a", "quick-cpu")
SPEED_CASES = {"predict_bi_stsb": "bi-encoder", "predict_cross_stsb": "cross-encoder"}


def _svg(draw: Callable[[object], None], size: tuple[float, float]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "sts-docs"
    fig, ax = plt.subplots(figsize=size)
    draw(ax)
    fig.tight_layout()
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None})
    plt.close(fig)
    return out.getvalue()


def frozen_vs_finetuned() -> str:
    """Dev and test Spearman (mean, std over seeds) of each row of the grid."""
    shown = [e for e in FROZEN_VS_FINETUNED if e in runs()]

    def draw(ax: object) -> None:
        for i, (column, label) in enumerate((("dev_spearman", "dev"), ("test_spearman", "test"))):
            stats = [spread(e, column) for e in shown]
            xs = [j + (i - 0.5) * 0.38 for j in range(len(shown))]
            ax.bar(xs, [s[0] for s in stats], 0.38, yerr=[s[1] for s in stats], label=label, capsize=3)
        ax.set_xticks(range(len(shown)), [f"{e}\n({len(runs()[e])} seeds)" for e in shown], fontsize=8)
        ax.set_ylabel("STS-B Spearman x100")
        ax.set_ylim(40, 95)
        ax.legend()
        ax.set_title("Frozen vs fine-tuned (experiments/results.csv)")

    return _svg(draw, (8, 4))


def speed() -> str:
    """Scoring pairs/s, ours (default settings) and sentence-transformers, per host kind."""
    benches = [read(name) for name in SPEED_FILES]

    def draw(ax: object) -> None:
        width = 0.2
        for k, (case, label) in enumerate(SPEED_CASES.items()):
            for side in ("ours", "peer"):
                offset = (2 * k + (side == "peer") - 1.5) * width
                ys = [b.record[case][side] for b in benches]
                ax.bar([j + offset for j in range(len(benches))], ys, width, label=f"{label}, {'sts' if side == 'ours' else 'sentence-transformers'}")
        ax.set_xticks(range(len(benches)), [f"{host_kind(b)}\n{b.name}" for b in benches], fontsize=7)
        ax.set_ylabel("pairs/s, STS-B test")
        ax.legend(fontsize=7)
        ax.set_title("Scoring speed per host kind (experiments/bench)")

    return _svg(draw, (9, 4.5))


FIGURES: dict[str, Callable[[], str]] = {
    "figures/frozen-vs-finetuned.svg": frozen_vs_finetuned,
    "figures/speed-per-host.svg": speed,
}
