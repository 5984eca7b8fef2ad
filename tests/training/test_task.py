"""The training task around a model: loss steps, frozen encoders, optimiser groups and
learning rates, and Lightning checkpoints of earlier versions."""
import pytest
import torch

from sts.core import BiEncoder, CrossEncoder
from sts.training.losses import BCELoss, CosineMSELoss
from sts.training.task import PairTask

from helpers import pair_batch, tiny_model

def make(cls, tiny_encoder: str, freeze_encoder: bool = False, **kw) -> PairTask:
    model = tiny_model(cls, tiny_encoder, freeze_encoder=freeze_encoder)
    return PairTask(model, loss=BCELoss() if cls is CrossEncoder else CosineMSELoss(), **kw)


def batch_for(task: PairTask) -> dict:
    return pair_batch(task.model)


@pytest.mark.parametrize("cls", [BiEncoder, CrossEncoder])
@pytest.mark.parametrize("frozen", [False, True])
def test_training_step_gives_a_loss_with_gradients(cls, frozen: bool, tiny_encoder: str) -> None:
    task = make(cls, tiny_encoder, freeze_encoder=frozen)
    loss = task.training_step(batch_for(task), 0)
    assert loss.ndim == 0 and loss.requires_grad


@pytest.mark.parametrize("cls", [BiEncoder, CrossEncoder])
def test_frozen_encoder_unchanged_after_step_head_changes(cls, tiny_encoder: str) -> None:
    module = make(cls, tiny_encoder, freeze_encoder=True, head_lr=1e-2)
    module.train()
    assert not module.model.encoder.training  # frozen encoder keeps dropout off
    before = {k: v.clone() for k, v in module.state_dict().items()}
    optimizer = torch.optim.AdamW(module.param_groups())
    module.training_step(batch_for(module), 0).backward()
    optimizer.step()
    after = module.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, "the head must learn"
    assert all(not k.startswith("model.encoder.") for k in changed)
    assert all(p.grad is None for p in module.model.encoder.parameters())


def test_fine_tuned_encoder_changes(tiny_encoder: str) -> None:
    module = make(BiEncoder, tiny_encoder)
    before = module.model.encoder.embeddings.word_embeddings.weight.clone()
    optimizer = torch.optim.AdamW(module.param_groups())
    module.training_step(batch_for(module), 0).backward()
    optimizer.step()
    assert not torch.equal(before, module.model.encoder.embeddings.word_embeddings.weight)


def test_param_groups_learning_rates(tiny_encoder: str) -> None:
    module = make(CrossEncoder, tiny_encoder, encoder_lr=1e-4, head_lr=1e-3, layerwise_lr_decay=0.5)
    lrs = sorted({g["lr"] for g in module.param_groups()})
    # 2 layers: embeddings 1e-4*0.5^3, layer0 *0.5^2, layer1 *0.5, head 1e-3
    assert lrs == pytest.approx([1.25e-5, 2.5e-5, 5e-5, 1e-3])
    n_params = sum(len(g["params"]) for g in module.param_groups())
    assert n_params == sum(1 for p in module.parameters() if p.requires_grad)


def test_a_checkpoint_of_the_model_as_its_own_module_resumes_into_the_task(tiny_encoder: str) -> None:
    """Lightning checkpoints written before the model was a module of its own hold the model's
    tensors without the task's `model.` prefix; loading adds it."""
    task = make(BiEncoder, tiny_encoder)
    old = {"state_dict": {k: v.clone() + 1 for k, v in task.model.state_dict().items()}, "sts": {"threshold": 0.7}}
    task.on_load_checkpoint(old)
    task.load_state_dict(old["state_dict"])
    assert task.model.threshold == 0.7
    assert torch.equal(task.model.encoder.embeddings.word_embeddings.weight, old["state_dict"]["model.encoder.embeddings.word_embeddings.weight"])
