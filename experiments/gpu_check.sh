#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: throughput vs sentence-transformers in bf16, then a short
# fine-tuning of both architectures on the GPU. Prints every figure; about 6 minutes on one H100.
# Not part of CI (which has no GPU).
#   bash experiments/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible to torch'; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
echo "== throughput, bf16, GPU"
$PY experiments/bench_throughput.py --device cuda --precision bf16 --steps 60 --repeats 3 --batch-size 16 --batch-size-eval 256
echo "== short fine-tuning on the GPU (bf16-mixed), bi-encoder then cross-encoder"
for model in bi_encoder cross_encoder; do
  $PY train.py trainer=gpu model=$model trainer.max_epochs=1 data.batch_size=32 trainer.enable_progress_bar=false \
    logger=csv hydra.run.dir=outputs/gpu_check/$model 2>&1 | tail -8
done
