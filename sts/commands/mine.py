"""mine: the similar pairs of one corpus, as sentence1, sentence2, score, lbl, best first
(sts.api.Model.mine does the work; this says first, in one line, whether it compares every pair
or searches a FAISS index, and why)."""
from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from sts.api import load
from sts.commands.cli import entry, run
from sts.config import options, scoring_settings
from sts.core.ann import ANN, choose
from sts.data.embeddings import EmbeddingsFile
from sts.data.readers import read_sentences
from sts.data.tables import TableWriter, atomic_output, check_output
from sts.data.terminal import format_table
from sts.errors import STSError


OUTPUT_COLUMNS = ["sentence1", "sentence2", "score", "lbl"]


def default_output(path: Path) -> Path:
    return path.with_name(f"{path.stem}.pairs.csv")


def mine(cfg: DictConfig) -> Path:
    """mine.py: write the similar pairs of cfg.input as sentence1, sentence2, score, lbl, best first."""
    options.check(cfg, options.MINE)
    input_path = Path(cfg.input)
    output = Path(cfg.output) if cfg.output else default_output(input_path)
    inputs = {"input": input_path, "ckpt": cfg.ckpt, "rerank": cfg.rerank, "calibration": cfg.get("calibration"), "embeddings": cfg.embeddings}
    output_format = check_output(inputs, output, cfg.overwrite)
    sentences = read_sentences(input_path, cfg.format, cfg.column)
    if cfg.embeddings:
        EmbeddingsFile(cfg.embeddings, rows=len(sentences))  # its header, before any model is loaded
    settings = scoring_settings(cfg)
    model = load(cfg.ckpt, **settings)
    rerank = load(cfg.rerank, **settings) if cfg.rerank else None
    if rerank is not None and rerank.architecture != "CrossEncoder":
        raise STSError(f"rerank={cfg.rerank}: is a {rerank.architecture}; rerank takes a cross-encoder (ckpt= gives the bi-encoder that finds candidates)")
    ann = ANN(**OmegaConf.to_container(cfg.ann))
    index, why = choose(cfg.index, len(set(sentences)), ann)
    print(why, flush=True)
    pairs = model.mine(sentences, top_k=cfg.top_k, threshold=cfg.threshold, max_pairs=cfg.max_pairs, rerank=rerank, progress=cfg.progress,
                       index=index, ann=ann, embeddings=cfg.embeddings)
    with atomic_output(output, cfg.overwrite) as handle:
        TableWriter(handle, OUTPUT_COLUMNS, output_format).write([p._asdict() | {"score": f"{p.score:.6f}"} for p in pairs])
    preview = [[p.sentence1[:50], p.sentence2[:50], f"{p.score:.4f}", str(p.lbl)] for p in pairs[: cfg.preview_rows]]
    if preview:
        print(format_table([OUTPUT_COLUMNS, *preview]))
    cut = rerank.threshold if rerank else model.threshold if cfg.threshold is None else float(cfg.threshold)
    how = f"the {cfg.top_k} best partners of each sentence" if cfg.top_k else f"pairs scoring >= {cut:.3f}"
    print(f"wrote {len(pairs)} pairs ({how}; {len(set(sentences))} distinct sentences) to {output}")
    return output


@hydra.main(version_base="1.3", config_path="../conf", config_name="mine")
def _main(cfg: DictConfig) -> None:
    run(mine, cfg)


main = entry(_main)


if __name__ == "__main__":
    main()
