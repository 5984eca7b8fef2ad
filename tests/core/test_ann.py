"""ANN mining (FAISS): recall against exact search measured on real sentence embeddings at the
shipped defaults, threshold mining past the first k neighbours, IVF, the auto rule, and FAISS
missing said in one line."""
import sys
from dataclasses import replace

import numpy as np
import pytest
from omegaconf import OmegaConf

import sts
from sts.core import ann
from sts.core.ann import ANN, choose
from sts.core.mining import similar_pairs
from sts.errors import STSError

from conftest import ROOT

needs_faiss = pytest.mark.skipif(not ann.available(), reason="FAISS is not installed (pip install 'sts[ann]')")


def shipped() -> ANN:
    """The ann.* defaults mine.py ships (sts/conf/mine.yaml), which the recall test holds to."""
    return ANN(**OmegaConf.to_container(OmegaConf.load(ROOT / "sts" / "conf" / "mine.yaml").ann))


def pair_set(found: tuple[np.ndarray, np.ndarray, np.ndarray]) -> set[tuple[int, int]]:
    return set(zip(found[0].tolist(), found[1].tolist()))


@pytest.fixture(scope="module")
def sentence_embeddings() -> np.ndarray:
    """The bundled model's embeddings of the distinct sentences of STS-B test (about 2,700)."""
    from sts.data.readers import read_pairs

    test = read_pairs(ROOT / "sts" / "resources" / "stsb" / "sts-test.csv", "stsb", [0, 5])
    corpus = list(dict.fromkeys([*test.sentence1, *test.sentence2]))
    return sts.load().embed(corpus)


def test_shipped_defaults_are_the_code_defaults() -> None:
    assert shipped() == ANN()


@needs_faiss
@pytest.mark.xdist_group("ann_recall")  # one process embeds the sentences once for both
@pytest.mark.parametrize("structure", ["hnsw", "ivf"])
def test_recall_against_exact_at_the_defaults(structure: str, sentence_embeddings: np.ndarray) -> None:
    """At least 99% of exact's pairs are found, for top_k and for a threshold, with the cosine
    exact search gives. (At this size IVF's default nprobe=128 searches most of its 69 lists; the
    recall of both at 26,724 sentences is in experiments/bench/mine-ann-27k.txt.)"""
    settings = replace(shipped(), structure=structure)
    assert len(sentence_embeddings) > 2500
    for top_k, min_score in [(10, None), (None, 0.6)]:
        exact = similar_pairs(sentence_embeddings, top_k, min_score)
        found = similar_pairs(sentence_embeddings, top_k, min_score, ann=settings)
        expected, got = pair_set(exact), pair_set(found)
        recall = len(got & expected) / len(expected)
        assert recall >= 0.99, f"{structure} top_k={top_k} min_score={min_score}: recall {recall:.4f}"
        assert (found[0] < found[1]).all() and (np.diff(found[2]) <= 1e-7).all()  # each pair once, best first
        cosine = dict(zip(zip(exact[0].tolist(), exact[1].tolist()), exact[2].tolist()))
        common = [(k, s) for k, s in zip(zip(found[0].tolist(), found[1].tolist()), found[2].tolist()) if k in cosine]
        np.testing.assert_allclose([s for _, s in common], [cosine[k] for k, _ in common], atol=1e-5)
        if top_k is None:
            assert got <= expected  # a threshold admits nothing below it


@needs_faiss
def test_threshold_mining_goes_past_the_first_neighbours(monkeypatch: pytest.MonkeyPatch) -> None:
    """A row with more partners above the threshold than first asked for (RANGE_K) gets them all:
    the search is repeated with a larger k, split so no call holds more than RESULTS results."""
    monkeypatch.setattr(ann, "RANGE_K", 4)
    monkeypatch.setattr(ann, "RESULTS", 500)
    rng = np.random.default_rng(0)
    tight = rng.standard_normal(32) + 0.05 * rng.standard_normal((60, 32))  # 60 near-copies: 1,770 pairs above 0.9
    embeddings = np.concatenate([tight, rng.standard_normal((200, 32))]).astype(np.float32)
    exact = pair_set(similar_pairs(embeddings, None, 0.9))
    assert len(exact) >= 1770
    assert pair_set(similar_pairs(embeddings, None, 0.9, ann=ANN())) == exact


@needs_faiss
def test_max_pairs_bounds_ann_mining_too() -> None:
    rng = np.random.default_rng(1)
    embeddings = rng.standard_normal((300, 16)).astype(np.float32)
    everything = similar_pairs(embeddings, 20)
    i, j, s = similar_pairs(embeddings, 20, max_pairs=50, ann=ANN(structure="ivf", nprobe=10**6))  # every list searched: exact
    assert len(s) == 50 and np.allclose(s, everything[2][:50], atol=1e-5)


def test_auto_chooses_by_corpus_size_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ANN(auto_from=1000)
    monkeypatch.setattr(ann, "available", lambda: True)
    assert choose("auto", 999, settings) == ("exact", "index=auto: exact for 999 distinct sentences (faiss from ann.auto_from=1,000)")
    how, why = choose("auto", 1000, settings)
    assert how == "faiss" and why.startswith("index=auto: faiss HNSW (m=32,") and "for 1,000 distinct sentences" in why
    assert choose("exact", 10**7, settings)[0] == "exact" and choose("faiss", 10, settings)[0] == "faiss"
    assert "\n" not in why
    monkeypatch.setattr(ann, "available", lambda: False)
    how, why = choose("auto", 10**6, settings)
    assert how == "exact" and "FAISS is not installed (pip install 'sts[ann]'" in why


def test_faiss_missing_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now raises ImportError
    with pytest.raises(STSError, match=r"^index=faiss needs FAISS: pip install 'sts\[ann\]' \(faiss-cpu\)$"):
        similar_pairs(np.eye(4, dtype=np.float32), 1, ann=ANN())
