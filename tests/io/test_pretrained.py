"""The real bundled all-MiniLM-L6-v2 (slow: a few fine-tuning steps on CPU)."""
import pytest

from sts.training.fit import train

from conftest import compose_train


@pytest.mark.slow
@pytest.mark.parametrize("model", ["bi_encoder", "cross_encoder"])
def test_fine_tune_bundled_minilm_a_few_steps(model: str, tmp_path) -> None:
    cfg = compose_train([
        f"model={model}", "soup=none", "logger=none", "trainer.max_steps=4", "trainer.limit_val_batches=4", "trainer.limit_test_batches=4",
        "trainer.enable_progress_bar=false", "data.batch_size=8",
    ], tmp_path)
    metrics = train(cfg)
    assert (tmp_path / "model.pt").is_file()
    if model == "bi_encoder":
        # four small steps from the pretrained sentence encoder keep it a good STS model
        assert metrics["val/spearman"] > 0.75
    else:
        assert metrics["val/spearman"] == metrics["val/spearman"]  # finite: the new head trained
