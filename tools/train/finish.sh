#!/usr/bin/env bash
# After training: export the EMA weights to models/reference-ddpm-32.onnx, then measure held-out eps-MSE and draw the
# model card's pictures through the C# code (models/evaluation.json, models/denoising.png, models/samples.png).
set -euo pipefail
cd "$(dirname "$0")/../.."
CELEBA=${CELEBA:-../shared/data/celeba}
/usr/bin/python3 tools/train/export.py "$@"
dotnet run --project src/DiffusionCircuits.Cli -c Release -- evaluate --model models/reference-ddpm-32.onnx \
  --real "$CELEBA" --heldout models/heldout-celeba.txt --images 300 --synthetic-seed 20251 --synthetic-start 100000 \
  --samples 64 --ddim-steps 50 --seed 1 --out models
