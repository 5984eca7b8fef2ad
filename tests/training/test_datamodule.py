from pathlib import Path

import pytest
from transformers import AutoTokenizer

from sts.training.datamodule import PairDataModule
from sts.core.inputs import PairInputs, stack
from sts.resources import resource


@pytest.fixture
def tokenizer(tiny_encoder: str):
    return AutoTokenizer.from_pretrained(tiny_encoder)


def stsb(tokenizer, joined: bool, **kw) -> PairDataModule:
    dm = PairDataModule(resource("stsb/sts-dev.csv"), resource("stsb/sts-test.csv"), None, format="stsb", batch_size=8, **kw)
    dm.attach(PairInputs(tokenizer, 64, joined=joined))
    dm.setup("fit")
    return dm


def test_tokenised_once_and_padded_per_batch(tokenizer, monkeypatch) -> None:
    calls = []
    original = tokenizer.__class__.__call__
    monkeypatch.setattr(tokenizer.__class__, "__call__", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    dm = stsb(tokenizer, joined=False)
    n_calls = len(calls)
    for _ in range(2):
        batch = next(iter(dm.train_dataloader()))
    assert len(calls) == n_calls  # epochs reuse the ids
    a = batch["a"]
    assert a["input_ids"].shape[0] == 8 and a["input_ids"].shape == a["attention_mask"].shape
    assert a["attention_mask"].sum(1).max() == a["input_ids"].shape[1]  # padded to the longest in batch only


def test_cross_encoder_batches_join_pairs_with_token_types(tokenizer) -> None:
    batch = next(iter(stsb(tokenizer, joined=True).val_dataloader()))
    ab = batch["ab"]
    assert set(ab) == {"input_ids", "attention_mask", "token_type_ids"}
    assert (ab["input_ids"][:, 0] == tokenizer.cls_token_id).all()
    assert ab["token_type_ids"].max() == 1


def test_eval_split_sorted_by_length(tokenizer) -> None:
    dm = stsb(tokenizer, joined=False)
    widths = [b["a"]["input_ids"].shape[1] for b in dm.val_dataloader()]
    assert widths[0] < widths[-1]


def test_positive_threshold_and_val_fraction(tokenizer, tmp_path: Path) -> None:
    f = tmp_path / "p.csv"
    f.write_text("sentence1,sentence2,label\n" + "".join(f"a{i},b{i},{i % 2}\n" for i in range(20)))
    dm = PairDataModule(str(f), val_fraction=0.25)
    dm.attach(PairInputs(tokenizer, 128, joined=False))
    dm.setup()
    assert len(dm.datasets["train"]) == 15 and len(dm.datasets["val"]) == 5
    assert dm.binary and dm.positive_threshold == 0.5


@pytest.mark.parametrize("joined", [True, False])
def test_symmetric_adds_reversed_pairs_to_cross_encoder_training_only(tokenizer, joined: bool) -> None:
    plain, both = stsb(tokenizer, joined=joined), stsb(tokenizer, joined=joined, symmetric=True)
    n = len(plain.pairs["train"])
    if not joined:  # a cosine is symmetric already: nothing to add
        assert len(both.datasets["train"]) == n
        return
    pairs, train = plain.pairs["train"], both.datasets["train"]
    assert len(train) == 2 * n
    reversed_ids = tokenizer(pairs.sentence2[0], pairs.sentence1[0], truncation=True, max_length=64)["input_ids"]
    assert train.encodings["ab"]["input_ids"][n] == reversed_ids
    assert train.encodings["ab"]["input_ids"][0] == plain.datasets["train"].encodings["ab"]["input_ids"][0]
    assert (train.gold[n:] == train.gold[:n]).all()
    assert len(both.datasets["val"]) == len(plain.datasets["val"])  # evaluation reads each pair once


def test_a_cross_encoder_scoring_both_orders_gets_reversed_evaluation_pairs(tiny_encoder: str, tokenizer) -> None:
    from transformers import AutoModel

    from sts.core import CrossEncoder

    model = CrossEncoder(encoder=AutoModel.from_pretrained(tiny_encoder), tokenizer=tokenizer, max_length=64, both_orders=True)
    dm = PairDataModule(resource("stsb/sts-dev.csv"), resource("stsb/sts-test.csv"), None, format="stsb", batch_size=8)
    dm.attach(model.inputs, both_orders=model.both_orders)
    dm.setup("fit")
    assert set(dm.datasets["train"].encodings) == {"ab"}  # training reads the pairs as given
    val, pairs = dm.datasets["val"], dm.pairs["val"]
    assert set(val.encodings) == {"ab", "ba"}
    assert val.encodings["ba"]["input_ids"][0] == tokenizer(pairs.sentence2[0], pairs.sentence1[0], truncation=True, max_length=64)["input_ids"]
    batch = next(iter(dm.val_dataloader()))
    assert batch["ba"]["input_ids"].shape[0] == batch["ab"]["input_ids"].shape[0]


def test_stack_pads_the_narrower_side_with_pad_ids_and_masks_them(tokenizer) -> None:
    inputs = PairInputs(tokenizer, 64, joined=False)
    sides = inputs.pairs(["A man plays a guitar on the stage tonight.", "Hi."], ["Hello.", "Yes."])
    batch = inputs.batch(sides, [0, 1])
    both = stack(batch["a"], batch["b"], pad_id=7)
    width = batch["a"]["input_ids"].shape[1]
    assert both["input_ids"].shape == both["attention_mask"].shape == (4, width) > batch["b"]["input_ids"].shape
    narrow = batch["b"]["input_ids"].shape[1]
    assert (both["input_ids"][2:, narrow:] == 7).all() and (both["attention_mask"][2:, narrow:] == 0).all()
    assert both["input_ids"][:2].equal(batch["a"]["input_ids"]) and both["attention_mask"][2:, :narrow].equal(batch["b"]["attention_mask"])
