#!/usr/bin/env bash
# One command for the whole reference model: training data (once), training (resumes from the last checkpoint when
# run again), export and evaluation. Needs Debian's python3-torch and python3-onnx (see models/README.md).
#   bash tools/train/train-all.sh [--steps 3800]
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -f tools/train/work/celeba/images.npy ] && [ -f tools/train/work/synth-train/images.npy ] || bash tools/train/prepare-data.sh
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--steps 3800)
/usr/bin/python3 tools/train/train.py --resume "${args[@]}"
bash tools/train/finish.sh
