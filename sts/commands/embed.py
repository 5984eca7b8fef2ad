"""embed(cfg): sentence embeddings of a corpus with a bi-encoder (trained, or the bundled encoder
as it is), in input order, optionally grouped with k-means. Embeddings are what the model
compares by cosine, so clustering runs on their unit-length versions."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import hydra
from omegaconf import DictConfig

from sts.api import Model, load
from sts.commands.cli import entry, run
from sts.config import options, scoring_settings
from sts.data.embeddings import write_npy
from sts.data.readers import read_sentences
from sts.data.tables import TableWriter, atomic_output, check_apart
from sts.data.terminal import format_table
from sts.errors import STSError
from sts.io.encoders import resolve



def load_embedder(cfg: DictConfig) -> Model:
    """The checkpoint's bi-encoder, or the configured encoder untrained (null: the bundled one)."""
    if cfg.ckpt:
        model = load(cfg.ckpt, **scoring_settings(cfg))
    else:
        name = resolve(cfg.encoder.name_or_path)
        model = load(name, **scoring_settings(cfg), pooling=cfg.pooling, max_length=cfg.encoder.max_length)
    if model.architecture != "BiEncoder":
        raise STSError(
            f"{cfg.ckpt}: is a {model.architecture}, which scores pairs jointly and has no sentence embeddings; "
            "use a bi-encoder model (train.py model=bi_encoder) or leave ckpt out for the bundled encoder"
        )
    return model


def check_npy_output(out: Path, overwrite: bool) -> None:
    if out.suffix != ".npy":
        raise STSError(f"out={out}: embeddings are written as numpy .npy; name the file *.npy")
    if out.is_dir() or (out.exists() and not overwrite):
        raise STSError(f"{out}: already exists; pass overwrite=true to replace it")
    if not out.parent.is_dir():
        raise STSError(f"{out.parent}: output directory does not exist")


def cluster(embeddings: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means labels on unit-length embeddings (so distance follows cosine), reproducible."""
    try:
        from sklearn.cluster import KMeans
    except ImportError:
        raise STSError("cluster.k needs scikit-learn: pip install 'sts[analysis]'") from None

    if not 1 <= k <= len(embeddings):
        raise STSError(f"cluster.k={k}: must be between 1 and the number of sentences ({len(embeddings)})")
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True).clip(min=1e-12)
    return KMeans(n_clusters=k, random_state=seed, n_init=10).fit_predict(unit)


def embed(cfg: DictConfig) -> np.ndarray:
    """Write cfg.out (N x dim float32, a chunk of sentences at a time) and, with cluster.k,
    <out stem>.clusters.csv; returns the embeddings memory-mapped from cfg.out."""
    options.check(cfg, options.EMBED)
    input_path, out = Path(cfg.input), Path(cfg.out)
    check_npy_output(out, cfg.overwrite)
    clusters_path = out.with_name(f"{out.stem}.clusters.csv")
    if cfg.cluster.k and clusters_path.exists() and not cfg.overwrite:
        raise STSError(f"{clusters_path}: already exists; pass overwrite=true to replace it")
    inputs = {"input": input_path, "ckpt": cfg.ckpt, "encoder.name_or_path": None if cfg.ckpt else cfg.encoder.name_or_path, "calibration": cfg.get("calibration")}
    check_apart({"out": out, "cluster": clusters_path if cfg.cluster.k else None}, inputs)
    sentences = read_sentences(input_path, cfg.format, cfg.column)
    if cfg.cluster.k and not 1 <= int(cfg.cluster.k) <= len(sentences):
        raise STSError(f"option cluster.k={cfg.cluster.k}: must be between 1 and the number of sentences ({len(sentences)})")
    model = load_embedder(cfg)
    with atomic_output(out, cfg.overwrite) as handle:  # a chunk at a time: memory holds one chunk, not the corpus's embeddings
        rows, width = write_npy(handle.buffer, model.embed_stream(sentences, progress=cfg.progress), len(sentences))
    print(f"wrote {rows} x {width} embeddings to {out}")
    embeddings = np.load(out, mmap_mode="r", allow_pickle=False)
    if cfg.cluster.k:
        labels = cluster(np.asarray(embeddings), int(cfg.cluster.k), int(cfg.cluster.seed))
        with atomic_output(clusters_path, cfg.overwrite) as handle:
            TableWriter(handle, ["sentence", "cluster"], "csv").write([{"sentence": s, "cluster": int(c)} for s, c in zip(sentences, labels)])
        rows = [["cluster", "size", "first sentence"]]
        rows += [[str(c), str(int((labels == c).sum())), sentences[int(np.argmax(labels == c))][:60]] for c in range(int(cfg.cluster.k))]
        print(format_table(rows, title=f"k-means, k={cfg.cluster.k}"))
        print(f"wrote {clusters_path}")
    return embeddings

@hydra.main(version_base="1.3", config_path="../conf", config_name="embed")
def _main(cfg: DictConfig) -> None:
    run(embed, cfg)


main = entry(_main)


if __name__ == "__main__":
    main()
