"""Packed-bit dropout masks: torch's dropout in distribution and in eval, padding still masked."""
import pytest
import torch

from sts.training.dropout import ATTENTION, PackedDropout, packed_dropout, use_packed_dropout
from sts.io.encoders import load_pretrained


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_masks_keep_one_minus_p_and_rescale(p: float) -> None:
    torch.manual_seed(0)
    out = packed_dropout(torch.ones(400, 1000), p)
    kept = out != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.003  # 400k Bernoulli draws: sd < 0.001
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / (1 - p)), rtol=1e-4)
    assert abs(out.mean().item() - 1.0) < 0.01  # unbiased, as inverted dropout must be


def test_masks_are_independent_across_lanes_and_calls() -> None:
    torch.manual_seed(0)
    a, b = packed_dropout(torch.ones(100_000), 0.5) != 0, packed_dropout(torch.ones(100_000), 0.5) != 0
    assert abs((a & b).float().mean().item() - 0.25) < 0.01  # two calls: independent masks
    lanes = a.view(-1, 4).float()  # the four 16-bit lanes of one 64-bit draw
    assert abs((lanes[:, 0] * lanes[:, 3]).mean().item() - 0.25) < 0.01


def test_masks_follow_the_seed() -> None:
    torch.manual_seed(3)
    first = packed_dropout(torch.ones(1000), 0.1)
    torch.manual_seed(3)
    assert torch.equal(first, packed_dropout(torch.ones(1000), 0.1))


def test_gradient_is_the_mask_times_the_scale() -> None:
    torch.manual_seed(0)
    x = torch.ones(64, 32, requires_grad=True)
    out = packed_dropout(x, 0.2)
    out.sum().backward()
    assert torch.equal(x.grad, out.detach())


def test_bf16_stays_bf16() -> None:
    assert packed_dropout(torch.ones(8, 8, dtype=torch.bfloat16), 0.1).dtype == torch.bfloat16


def test_eval_and_zero_p_are_the_identity() -> None:
    x = torch.randn(4, 5)
    assert torch.equal(PackedDropout(0.1).eval()(x), x)
    assert torch.equal(PackedDropout(0.0)(x), x)


def _batch(tokenizer):
    # the second sentence is padded: its padding must stay unattended under the new attention
    return tokenizer(["a man is playing a guitar on the stage tonight", "two dogs"], padding=True, return_tensors="pt")


def test_swapped_encoder_matches_torch_in_eval_and_with_no_dropout(tiny_encoder: str) -> None:
    tokenizer, reference = load_pretrained(tiny_encoder)
    _, packed = load_pretrained(tiny_encoder)
    use_packed_dropout(packed)
    assert packed.config._attn_implementation == ATTENTION
    assert not any(type(m) is torch.nn.Dropout for m in packed.modules())
    assert not any(m.training for m in packed.modules())  # swapped layers keep the encoder's eval mode
    batch = _batch(tokenizer)
    with torch.no_grad():
        assert torch.allclose(reference(**batch).last_hidden_state, packed(**batch).last_hidden_state, atol=1e-6)
    reference.train(), packed.train()
    for m in [*reference.modules(), *packed.modules()]:
        if isinstance(m, torch.nn.Dropout):
            m.p = 1e-9  # attention dropout stays on the packed path, yet keeps every weight
    with torch.no_grad():
        assert torch.allclose(reference(**batch).last_hidden_state, packed(**batch).last_hidden_state, atol=1e-5)


def test_training_passes_differ_and_the_field_switches_it_off(tiny_cfg) -> None:
    from sts.training.fit import build_model

    model = build_model(tiny_cfg())
    assert any(isinstance(m, PackedDropout) for m in model.encoder.modules())
    batch = _batch(model.tokenizer)
    model.encoder.train()
    with torch.no_grad():
        assert not torch.equal(model.encoder(**batch).last_hidden_state, model.encoder(**batch).last_hidden_state)
    plain = build_model(tiny_cfg("encoder.packed_dropout=false"))
    assert not any(isinstance(m, PackedDropout) for m in plain.encoder.modules())
    assert plain.encoder.config._attn_implementation == "sdpa"
