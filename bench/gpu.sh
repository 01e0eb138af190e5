#!/usr/bin/env bash
# Prepared GPU benchmark (issue 11): one short script for a machine with a CUDA GPU.
#
# Prints, for the large (v1.5) preset at 256 px: chips/s in exact fp32 and in fast mode (the path
# clay_explore.model.fastpath picks on this GPU: bf16, or fp16 without bf16), the fraction of the
# device's dense-matmul peak (measured by the same run at the encoder's MLP shape), the fused
# attention throughput, the fast mode's token differences, the batch size `embed --batch-size auto`
# would take, and the peak device memory. Random weights: speed does not depend on the values.
#
#     bash bench/gpu.sh                 # CHIPS=32 chips per pass, REPEATS=5
#     CHIPS=64 DEVICE=cuda:1 bash bench/gpu.sh
#
# Needs the project's Python dependencies (torch with CUDA, einops); no network, no checkpoint.
# Takes about a minute on a recent data-centre GPU (fp32 without TF32 is the slow part).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PYTHON=${PYTHON:-python}
CHIPS=${CHIPS:-32}
REPEATS=${REPEATS:-5}
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-256}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
"$PYTHON" - "$DEVICE" "$SIZE" <<'EOF'
import sys

import torch

if not torch.cuda.is_available():
    sys.exit(f"No CUDA GPU visible to torch {torch.__version__} (CUDA build: {torch.version.cuda}); nothing to measure.")
from clay_explore.model import PRESETS
from clay_explore.model.device import auto_batch_size, device_label, resolve_device

device = resolve_device(sys.argv[1])
size = int(sys.argv[2])
free, total = torch.cuda.mem_get_info(device)
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {device_label(device)}, "
      f"bf16 {torch.cuda.is_bf16_supported()}, free {free / 2**30:.1f} of {total / 2**30:.1f} GiB")
print(f"embed --batch-size auto on this device: {auto_batch_size(PRESETS['large'], size, device)} chips of {size} px")
EOF
timeout 900 "$PYTHON" bench/embed.py --device "$DEVICE" --preset large --chips "$CHIPS" --size "$SIZE" \
    --repeats "$REPEATS" --threads "$(nproc)"
