#!/usr/bin/env bash
# Writes the training arrays under tools/train/work/ with the tool's own generator and CelebA preprocessing.
set -euo pipefail
cd "$(dirname "$0")/../.."
CELEBA=${CELEBA:-../shared/data/celeba}
run() { dotnet run --project src/DiffusionCircuits.Cli -c Release -- "$@"; }
run synth --images 4000 --image-size 32 --seed 20251 --out tools/train/work/synth-train --npy
run synth --images 300 --image-size 32 --seed 20251 --start 100000 --out tools/train/work/synth-heldout --npy
run prepare --source "$CELEBA" --image-size 32 --out tools/train/work/celeba
