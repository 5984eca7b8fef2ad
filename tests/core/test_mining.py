"""Paraphrase mining: blockwise search equals brute force and sentence-transformers'
paraphrase_mining; Model.mine and mine.py (repeats once, no self-pairs, rerank, refusals)."""
from pathlib import Path

import numpy as np
import pytest
import torch

import sts
from sts.core import mining
from sts.errors import STSError
from sts.commands.mine import mine
from sts.core.ann import ANN
from sts.core.mining import similar_pairs

from conftest import ROOT, compose_config, refused
from helpers import run_cli

CORPUS = [
    "A man is playing a guitar.",
    "A man plays the guitar.",
    "A woman is slicing an onion.",
    "Someone cuts an onion.",
    "The stock market fell today.",
    "Markets dropped sharply.",
    "A cat sleeps on the sofa.",
    "A man is playing a guitar.",  # a repeat: counted once
]


def brute_force(embeddings: torch.Tensor, top_k: int | None, min_score: float | None) -> dict[tuple[int, int], float]:
    unit = torch.nn.functional.normalize(embeddings, dim=-1)
    sims = (unit @ unit.T).numpy()
    n = len(sims)
    found: dict[tuple[int, int], float] = {}
    for i in range(n):
        others = [j for j in np.argsort(-sims[i], kind="stable") if j != i]
        for j in others[:top_k] if top_k else others:
            if min_score is None or sims[i, j] >= min_score:
                found[(min(i, j), max(i, j))] = float(sims[i, j])
    return found


@pytest.mark.parametrize(("top_k", "min_score"), [(3, None), (None, 0.2), (2, 0.1), (50, None)])
def test_blockwise_search_equals_brute_force(top_k, min_score, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mining, "BLOCK_BYTES", 4 * 40 * 7)  # 7 rows per block: many blocks, ragged last
    torch.manual_seed(0)
    embeddings = torch.randn(40, 8)
    i, j, s = similar_pairs(embeddings, top_k, min_score)
    expected = brute_force(embeddings, top_k, min_score)
    assert dict(zip(zip(i.tolist(), j.tolist()), s.tolist())) == pytest.approx(expected, abs=1e-5)
    assert (i < j).all() and (np.diff(s) <= 1e-7).all()  # each pair once, best first


def test_max_pairs_keeps_the_best(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mining, "BLOCK_BYTES", 4 * 60 * 5)
    torch.manual_seed(1)
    embeddings = torch.randn(60, 4)
    everything = similar_pairs(embeddings, None, -1.0)
    assert len(everything[0]) == 60 * 59 // 2
    i, j, s = similar_pairs(embeddings, None, -1.0, max_pairs=25)
    assert len(s) == 25 and np.allclose(s, everything[2][:25])


def test_needs_top_k_or_threshold() -> None:
    with pytest.raises(STSError, match="needs top_k"):
        similar_pairs(torch.randn(3, 2))


def test_same_pairs_as_sentence_transformers_paraphrase_mining() -> None:
    from sentence_transformers import SentenceTransformer, util

    from sts.data.readers import read_pairs

    test = read_pairs(ROOT / "sts" / "resources" / "stsb" / "sts-test.csv", "stsb", [0, 5])
    corpus = list(dict.fromkeys([*test.sentence1[:150], *test.sentence2[:150]]))
    model = sts.load()
    ours = {frozenset((p.sentence1, p.sentence2)) for p in model.mine(corpus, top_k=3)}
    reference = SentenceTransformer(model.info["encoder"]["name"], device="cpu")
    reference.max_seq_length = model.info["max_length"]
    theirs = {frozenset((corpus[i], corpus[j])) for _, i, j in util.paraphrase_mining(reference, corpus, top_k=3)}
    assert len(ours) > len(corpus) and ours == theirs


def test_model_mine_repeats_once_no_self_pairs_and_labels() -> None:
    model = sts.load()
    pairs = model.mine(CORPUS, top_k=2)
    assert all(p.sentence1 != p.sentence2 for p in pairs)
    keys = [frozenset((p.sentence1, p.sentence2)) for p in pairs]
    assert len(keys) == len(set(keys)) and all(p.lbl == int(p.score >= model.threshold) for p in pairs)
    assert pairs[0].sentence1.startswith("A man") and pairs[0].sentence2.startswith("A man")
    above = model.mine(CORPUS)  # no top_k: every pair at or above the model's threshold
    assert above and all(p.lbl == 1 for p in above) and [p.score for p in above] == sorted((p.score for p in above), reverse=True)
    assert model.mine(CORPUS, threshold=0.0, top_k=None)[-1].score >= 0.0 and len(model.mine(CORPUS, threshold=0.0)) == 21  # 7 distinct: 21 pairs
    scores = model.score([p.sentence1 for p in pairs], [p.sentence2 for p in pairs])
    np.testing.assert_allclose([p.score for p in pairs], scores, atol=1e-5)  # the same score as score()


def test_cross_encoder_mines_only_as_rerank(tiny_cross_model_file: Path) -> None:
    cross, bi = sts.load(tiny_cross_model_file), sts.load()
    with pytest.raises(STSError, match="pass this model as rerank="):
        cross.mine(CORPUS, top_k=2)
    reranked = bi.mine(CORPUS, top_k=2, rerank=cross)
    candidates = bi.mine(CORPUS, top_k=2)
    assert {frozenset(p[:2]) for p in reranked} == {frozenset(p[:2]) for p in candidates}
    expected = cross.score([p.sentence1 for p in reranked], [p.sentence2 for p in reranked])
    np.testing.assert_allclose([p.score for p in reranked], expected, atol=1e-6)
    assert all(p.lbl == int(p.score >= cross.threshold) for p in reranked)


def test_mine_script_writes_pairs_and_refuses_bad_options(tmp_path: Path, capsys) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(CORPUS) + "\n")
    result = run_cli([str(ROOT / "mine.py"), f"input={corpus}", "top_k=1"], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "corpus.pairs.csv").read_text().splitlines()
    assert lines[0] == "sentence1,sentence2,score,lbl" and len(lines) > 2
    assert "error: option top_k=0 must be" in refused(capsys, mine, compose_config("mine", [f"input={corpus}", "top_k=0"]))
    assert "refusing to write over the input" in refused(capsys, mine, compose_config("mine", [f"input={corpus}", f"output={corpus}", "overwrite=true"]))
    assert "already exists" in refused(capsys, mine, compose_config("mine", [f"input={corpus}", "top_k=1"]))
    blank = tmp_path / "blank.txt"
    blank.write_text("a cat\n\nthe dog\n")
    assert refused(capsys, mine, compose_config("mine", [f"input={blank}"])) == f"error: {blank}: row 2: line is empty"


def test_faiss_index_finds_the_same_pairs_in_the_same_form() -> None:
    pytest.importorskip("faiss")
    model = sts.load(precision="fp32", backend="torch")
    for top_k in (2, None):
        exact = model.mine(CORPUS, top_k=top_k, index="exact")
        ann = model.mine(CORPUS, top_k=top_k, index="faiss")
        assert [p[:2] for p in ann] == [p[:2] for p in exact] and [p.lbl for p in ann] == [p.lbl for p in exact]
        np.testing.assert_allclose([p.score for p in ann], [p.score for p in exact], atol=1e-5)
        assert all(isinstance(p, mining.MinedPair) for p in ann)
    ivf = model.mine(CORPUS, top_k=2, index="faiss", ann=ANN(structure="ivf"))
    assert [p[:2] for p in ivf] == [p[:2] for p in model.mine(CORPUS, top_k=2, index="exact")]


def test_rerank_scores_ann_candidates(tiny_cross_model_file: Path) -> None:
    pytest.importorskip("faiss")
    cross, bi = sts.load(tiny_cross_model_file), sts.load(precision="fp32", backend="torch")
    reranked = bi.mine(CORPUS, top_k=2, rerank=cross, index="faiss")
    assert {frozenset(p[:2]) for p in reranked} == {frozenset(p[:2]) for p in bi.mine(CORPUS, top_k=2, index="exact")}
    np.testing.assert_allclose([p.score for p in reranked], cross.score([p.sentence1 for p in reranked], [p.sentence2 for p in reranked]), atol=1e-6)
    assert all(p.lbl == int(p.score >= cross.threshold) for p in reranked)


@pytest.mark.parametrize("index", ["exact", "faiss"])
def test_mining_from_given_embeddings(index: str, tmp_path: Path) -> None:
    """embed.py's file (or an array) of the whole input, repeats included, gives the pairs that
    embedding here gives; one of another size or width is refused."""
    if index == "faiss":
        pytest.importorskip("faiss")
    model = sts.load(precision="fp32", backend="torch")
    embeddings = model.embed(CORPUS)
    np.save(tmp_path / "e.npy", embeddings)
    expected = model.mine(CORPUS, top_k=2, index=index)
    for given in (embeddings, tmp_path / "e.npy", str(tmp_path / "e.npy")):
        pairs = model.mine(CORPUS, top_k=2, index=index, embeddings=given)
        assert [p[:2] for p in pairs] == [p[:2] for p in expected]
        np.testing.assert_allclose([p.score for p in pairs], [p.score for p in expected], atol=1e-5)
    with pytest.raises(STSError, match=r"embeddings: expected 8 x 384 finite floats"):
        model.mine(CORPUS, top_k=2, index=index, embeddings=embeddings[:7])
    with pytest.raises(STSError, match=r"e.npy: holds 8 embeddings but the input has 7 sentences"):
        model.mine(CORPUS[:7], top_k=2, index=index, embeddings=tmp_path / "e.npy")


def test_mine_script_says_its_index_and_mines_from_embed_output(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("faiss")
    from sts.commands.embed import embed
    from sts.core import ann

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(CORPUS) + "\n")
    embed(compose_config("embed", [f"input={corpus}", f"out={tmp_path / 'corpus.npy'}", "precision=fp32", "backend=torch"]))
    capsys.readouterr()
    common = [f"input={corpus}", "top_k=2", "precision=fp32", "backend=torch", "preview_rows=0"]
    mine(compose_config("mine", [*common, f"output={tmp_path / 'exact.csv'}"]))
    assert capsys.readouterr().out.splitlines()[0] == "index=auto: exact for 7 distinct sentences (faiss from ann.auto_from=100,000)"
    mine(compose_config("mine", [*common, f"output={tmp_path / 'ann.csv'}", "ann.auto_from=5", f"embeddings={tmp_path / 'corpus.npy'}"]))
    assert capsys.readouterr().out.splitlines()[0] == "index=auto: faiss HNSW (m=32, ef_construction=80, ef_search=256) for 7 distinct sentences (from ann.auto_from=5)"
    exact, found = ((tmp_path / name).read_text().splitlines() for name in ("exact.csv", "ann.csv"))
    assert found[0] == exact[0] == "sentence1,sentence2,score,lbl" and [r.rsplit(",", 2)[0] for r in found] == [r.rsplit(",", 2)[0] for r in exact]
    (tmp_path / "bad.npy").write_bytes((tmp_path / "corpus.npy").read_bytes()[:-4])
    message = refused(capsys, mine, compose_config("mine", [*common, f"output={tmp_path / 'x.csv'}", f"embeddings={tmp_path / 'bad.npy'}"]))
    assert message.startswith(f"error: {tmp_path / 'bad.npy'}: is ") and "truncated or padded" in message
    assert "refusing to write over the input embeddings=" in refused(capsys, mine, compose_config("mine", [*common, f"output={tmp_path / 'corpus.npy'}", f"embeddings={tmp_path / 'corpus.npy'}", "overwrite=true"]))
    monkeypatch.setattr(ann, "available", lambda: False)
    assert refused(capsys, mine, compose_config("mine", [*common, "index=faiss"])) == "error: option index='faiss' needs FAISS, which is not installed: pip install 'sts[ann]' (faiss-cpu)"
    assert "error: option ann.structure='lsh' must be one of hnsw, ivf" == refused(capsys, mine, compose_config("mine", [*common, "ann.structure=lsh"]))
