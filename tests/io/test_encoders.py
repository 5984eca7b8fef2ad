"""Loading encoders: dropout override for fine-tuning."""
import pytest
import torch

from sts.errors import STSError
from sts.io.encoders import load_pretrained


def _two_training_passes(encoder: torch.nn.Module, tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    batch = tokenizer(["a man is playing a guitar", "two dogs run"], padding=True, return_tensors="pt")
    encoder.train()
    with torch.no_grad():
        return encoder(**batch).last_hidden_state, encoder(**batch).last_hidden_state


def test_dropout_zero_makes_training_passes_deterministic(tiny_encoder: str) -> None:
    tokenizer, encoder = load_pretrained(tiny_encoder, dropout=0.0)
    assert encoder.config.hidden_dropout_prob == 0.0 and encoder.config.attention_probs_dropout_prob == 0.0
    first, second = _two_training_passes(encoder, tokenizer)
    assert torch.equal(first, second)


def test_dropout_null_keeps_the_checkpoints(tiny_encoder: str) -> None:
    tokenizer, encoder = load_pretrained(tiny_encoder)
    assert encoder.config.hidden_dropout_prob > 0
    first, second = _two_training_passes(encoder, tokenizer)
    assert not torch.equal(first, second)


def test_dropout_out_of_range_is_a_clear_error(tiny_encoder: str) -> None:
    with pytest.raises(STSError, match=r"encoder.dropout must be in \[0, 1\)"):
        load_pretrained(tiny_encoder, dropout=1.5)


def test_encoder_dropout_field_reaches_the_built_model(tiny_cfg) -> None:
    from sts.training.fit import build_model

    model = build_model(tiny_cfg("encoder.dropout=0.0"))
    assert model.encoder.config.hidden_dropout_prob == 0.0
    assert all(m.p == 0.0 for m in model.encoder.modules() if isinstance(m, torch.nn.Dropout))
