#!/usr/bin/env bash
# The GPU figures BENCHMARKS.md lacks, in one run of about 5 minutes on one GPU (from the repository root):
# the optimizer step against torch's fused AdamW, lr_find against fastai's, the CUDA RNG restore and the cost of lr='auto'.
# Each check runs whatever an earlier one did (the RNG and 'auto' checks first: they matter most); the exit status says if any failed.
set -uo pipefail
export CUBLAS_WORKSPACE_CONFIG=:4096:8  # cuBLAS deterministic: the checks compare runs bit for bit
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0), torch.__version__)" || exit 1
failed=()
python benchmarks/bench_gpu.py || failed+=(bench_gpu.py)
python benchmarks/bench_optimizer.py --device cuda --rounds 9 || failed+=(bench_optimizer.py)
python benchmarks/bench_lr_find.py --part speed --reps 5 --threads 4 || failed+=(bench_lr_find.py)
if ((${#failed[@]})); then echo "FAILED: ${failed[*]}"; exit 1; fi
