"""Forward passes, pooling, both orders and scoring of both architectures (plain nn.Modules) on the tiny encoder."""
import pytest
import torch

from sts.core import BiEncoder, CrossEncoder
from sts.core.inputs import pad
from sts.errors import STSError

from helpers import S1, S2, pair_batch, tiny_model


def make(cls, tiny_encoder: str, **kw):
    return tiny_model(cls, tiny_encoder, **kw)


batch_for = pair_batch


@pytest.mark.parametrize("cls", [BiEncoder, CrossEncoder])
@pytest.mark.parametrize("frozen", [False, True])
def test_forward_scores_each_pair(cls, frozen: bool, tiny_encoder: str) -> None:
    module = make(cls, tiny_encoder, freeze_encoder=frozen)
    scores = module.activation(module(batch_for(module)))
    assert scores.shape == (3,)
    assert ((scores >= -1) & (scores <= 1)).all()
    assert isinstance(module, torch.nn.Module) and not any("lightning" in c.__module__ for c in type(module).__mro__)


def test_bi_encoder_embeds_both_sides_in_one_pass_as_two_passes_would(tiny_encoder: str, monkeypatch) -> None:
    module = make(BiEncoder, tiny_encoder).eval()
    batch = batch_for(module)
    batch["b"] = pad(module.inputs.texts(["Markets dropped.", "A dog.", "Yes."]), module.tokenizer.pad_token_id)
    assert batch["a"]["input_ids"].shape[1] != batch["b"]["input_ids"].shape[1]  # one side is padded wider
    apart = module.compare(module.embed(batch["a"]), module.embed(batch["b"]))
    calls = []
    encoder_forward = module.encoder.forward
    monkeypatch.setattr(module.encoder, "forward", lambda **kw: calls.append(kw["input_ids"].shape) or encoder_forward(**kw))
    together = module(batch)
    assert calls == [(6, max(batch["a"]["input_ids"].shape[1], batch["b"]["input_ids"].shape[1]))]
    torch.testing.assert_close(together, apart, atol=1e-5, rtol=0)


def test_bi_encoder_scores_each_distinct_sentence_once(tiny_encoder: str, monkeypatch) -> None:
    module = make(BiEncoder, tiny_encoder).eval()
    seen = []
    embed = module.embed
    monkeypatch.setattr(module, "embed", lambda f: seen.append(f["input_ids"].shape[0]) or embed(f))
    s1, s2 = ["same sentence"] * 50 + ["x"], ["other one"] * 50 + ["y"]
    scores = module.score_texts(s1, s2, batch_size=64)
    assert sum(seen) == 4 and scores.shape == (51,)
    assert scores[0] == pytest.approx(module.score_texts(["same sentence"], ["other one"])[0], abs=1e-6)


@pytest.mark.parametrize("cls", [BiEncoder, CrossEncoder])
def test_score_texts_order_independent_of_batching(cls, tiny_encoder: str) -> None:
    module = make(cls, tiny_encoder).eval()
    one_by_one = [module.score_texts([a], [b], clip=False)[0] for a, b in zip(S1, S2)]
    together = module.score_texts(S1, S2, batch_size=2, clip=False)
    assert together == pytest.approx(one_by_one, abs=1e-5)


def test_cross_encoder_pooling_reads_all_tokens_or_cls(tiny_encoder: str) -> None:
    cls_head, mean_head = make(CrossEncoder, tiny_encoder).eval(), make(CrossEncoder, tiny_encoder, pooling="mean").eval()
    assert mean_head.extra_hparams()["pooling"] == "mean"
    batch = batch_for(cls_head)
    with torch.no_grad():
        hidden = cls_head.encoder(**batch["ab"]).last_hidden_state
        mask = batch["ab"]["attention_mask"].unsqueeze(-1).float()
        mean = (hidden * mask).sum(1) / mask.sum(1)
        expected = mean_head.classifier(torch.tanh(mean_head.dense(mean))).squeeze(-1)
        assert torch.allclose(mean_head(batch), expected, atol=1e-6)
        assert not torch.allclose(mean_head(batch), cls_head(batch))  # same weights, other pooled state


def test_cross_encoder_unknown_pooling_is_an_error(tiny_encoder: str) -> None:
    with pytest.raises(STSError, match="pooling"):
        make(CrossEncoder, tiny_encoder, pooling="last")


def test_same_token_types_starts_sentence_b_like_sentence_a(tiny_encoder: str) -> None:
    plain, same = make(CrossEncoder, tiny_encoder), make(CrossEncoder, tiny_encoder, same_token_types=True)
    types = same.encoder.embeddings.token_type_embeddings.weight
    assert torch.equal(types[0], types[1])
    assert not torch.equal(*plain.encoder.embeddings.token_type_embeddings.weight)  # the default keeps the checkpoint's rows
    assert torch.equal(types[0], plain.encoder.embeddings.token_type_embeddings.weight[0])


def test_both_orders_averages_the_logits_of_each_pair_and_its_reverse(tiny_encoder: str) -> None:
    plain, both = make(CrossEncoder, tiny_encoder).eval(), make(CrossEncoder, tiny_encoder, both_orders=True).eval()
    with torch.no_grad():  # an untrained head scores every pair near 0.5; widen it so orders differ
        plain.classifier.weight.normal_(std=2.0)
    both.load_state_dict(plain.state_dict())
    assert both.extra_hparams()["both_orders"] is True
    forward, backward = plain.score_texts(S1, S2, clip=False), plain.score_texts(S2, S1, clip=False)
    assert abs(forward - backward).max() > 1e-3  # the joined input is not symmetric
    logit = lambda p: torch.logit(torch.as_tensor(p, dtype=torch.float64))  # noqa: E731
    expected = torch.sigmoid((logit(forward) + logit(backward)) / 2).numpy()
    assert both.score_texts(S1, S2, clip=False) == pytest.approx(expected, abs=1e-5)
    assert both.score_texts(S1, S2, clip=False) == pytest.approx(both.score_texts(S2, S1, clip=False), abs=1e-6)


def test_both_orders_batches_need_the_reversed_pairs_in_evaluation_only(tiny_encoder: str) -> None:
    module = make(CrossEncoder, tiny_encoder, both_orders=True)
    enc = module.inputs.pairs(S1, S2, both_orders=True)
    batch = {side: pad(e, module.tokenizer.pad_token_id) for side, e in enc.items()}
    module.eval()
    with torch.no_grad():
        expected = (module.logit(batch["ab"]) + module.logit(batch["ba"])) / 2
        assert torch.allclose(module(batch), expected, atol=1e-6)
        with pytest.raises(STSError, match="both_orders"):
            module({"ab": batch["ab"]})
    module.train()
    module.dropout.p = 0.0
    module.encoder.eval()
    with torch.no_grad():  # training reads each pair as given
        assert torch.allclose(module({"ab": batch["ab"]}), module.logit(batch["ab"]), atol=1e-6)


def test_set_both_orders_overrides_a_cross_encoder_and_refuses_a_bi_encoder(tiny_encoder: str) -> None:
    from sts.core.cross_encoder import set_both_orders

    cross = make(CrossEncoder, tiny_encoder)
    assert set_both_orders(cross, None).both_orders is False
    assert set_both_orders(cross, True).both_orders is True
    bi = make(BiEncoder, tiny_encoder)
    assert set_both_orders(bi, False) is bi
    with pytest.raises(STSError, match="symmetric"):
        set_both_orders(bi, True)


# --- long inputs (long_inputs=chunk) -----------------------------------------------------------
LONG1 = " ".join(f"the guitar player number {i} walks to the stage." for i in range(12))
LONG2 = " ".join(f"someone plays a song {i} for the crowd tonight." for i in range(9))


def windows_by_hand(ids: list[int], window: int) -> list[list[int]]:
    """Windows of `window` tokens with a quarter of them overlapping, the last one ending at the end."""
    step, begin = window - window // 4, [0]
    while begin[-1] + window < len(ids):
        begin.append(min(begin[-1] + step, len(ids) - window))
    return [ids[s : s + window] for s in begin]


@pytest.mark.parametrize(("cls", "kw"), [(BiEncoder, {}), (CrossEncoder, {}), (CrossEncoder, {"both_orders": True})], ids=["bi", "cross", "cross-both-orders"])
def test_chunk_scores_texts_that_fit_exactly_as_truncate(cls, kw: dict, tiny_encoder: str) -> None:
    from sts.core.windows import LongInputs

    module = make(cls, tiny_encoder, **kw).eval()
    truncated = module.score_texts(S1, S2, batch_size=2, clip=False)
    assert (module.score_texts(S1, S2, batch_size=2, clip=False, long=LongInputs("chunk")) == truncated).all()
    if cls is BiEncoder:
        assert torch.equal(module.embed_texts(S1, long=LongInputs("chunk")), module.embed_texts(S1))


def test_bi_encoder_embeds_a_long_text_as_the_mean_of_its_windows(tiny_encoder: str) -> None:
    from sts.core.windows import LongInputs

    module = make(BiEncoder, tiny_encoder).eval()
    tokenizer = module.tokenizer
    ids = tokenizer(LONG1, add_special_tokens=False)["input_ids"]
    windows = windows_by_hand(ids, 30)
    assert len(windows) >= 4
    with torch.no_grad():
        one_by_one = [module.encode(pad({"input_ids": [[tokenizer.cls_token_id, *w, tokenizer.sep_token_id]]}, tokenizer.pad_token_id)) for w in windows]
    expected = torch.cat(one_by_one).mean(0)
    embeddings = module.embed_texts([LONG1, S1[0]], batch_size=3, long=LongInputs("chunk"))
    torch.testing.assert_close(embeddings[0], expected, atol=1e-5, rtol=0)
    truncated = module.embed_texts([LONG1])[0]
    torch.testing.assert_close(truncated, one_by_one[0][0], atol=1e-5, rtol=0)  # truncate reads the first window only
    assert not torch.allclose(embeddings[0], truncated, atol=1e-3)
    cosine = torch.nn.functional.cosine_similarity(expected, module.embed_texts([LONG2], long=LongInputs("chunk"))[0], dim=0)
    assert module.score_texts([LONG1], [LONG2], clip=False, long=LongInputs("chunk"))[0] == pytest.approx(float(cosine), abs=1e-5)


@pytest.mark.parametrize("reduce", ["max", "mean"])
def test_cross_encoder_reduces_the_logits_of_every_window_pair(reduce: str, tiny_encoder: str) -> None:
    from sts.core.windows import LongInputs

    module = make(CrossEncoder, tiny_encoder, pooling="mean").eval()
    torch.nn.init.normal_(module.classifier.weight, std=30.0)  # logits that differ between windows (the untrained head's barely do)
    tokenizer = module.tokenizer
    a, b = (tokenizer(t, add_special_tokens=False)["input_ids"] for t in (LONG1, LONG2))
    logits = []
    with torch.no_grad():
        for w1 in windows_by_hand(a, 15):  # 32 - 3 special tokens, split 15 + 14
            for w2 in windows_by_hand(b, 14):
                ids = [tokenizer.cls_token_id, *w1, tokenizer.sep_token_id, *w2, tokenizer.sep_token_id]
                types = [0] * (len(w1) + 2) + [1] * (len(w2) + 1)
                logits.append(module.logit(pad({"input_ids": [ids], "token_type_ids": [types]}, tokenizer.pad_token_id)))
    logits = torch.cat(logits)
    assert len(logits) >= 16
    expected = torch.sigmoid(logits.max() if reduce == "max" else logits.mean())
    score = module.score_texts([LONG1, S1[0]], [LONG2, S2[0]], batch_size=5, long=LongInputs("chunk", reduce=reduce))
    assert score[0] == pytest.approx(float(expected), abs=1e-5)
    assert score[1] == pytest.approx(float(module.score_texts([S1[0]], [S2[0]])[0]), abs=1e-5)  # a pair that fits: one input, as truncated
    assert float(logits.max() - logits.min()) > 0.1  # max and mean differ



def test_truncation_warns_with_the_remedy_and_chunk_does_not_warn(tiny_encoder: str, caplog) -> None:
    import logging

    from sts.core.windows import LongInputs

    module = make(BiEncoder, tiny_encoder).eval()
    with caplog.at_level(logging.WARNING):
        module.score_texts([LONG1], [S1[0]])
    assert [r.getMessage() for r in caplog.records] == ["1 input(s) reached encoder.max_length=32 tokens and were truncated; long_inputs=chunk reads them whole, in overlapping windows"]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        module.score_texts([LONG1], [S1[0]], long=LongInputs("chunk"))
    assert caplog.records == []
