#!/usr/bin/env bash
# Export every shipped bundle's weights to TorchScript with MONAI's own `ckpt_export`:
#   models/model.pt -> models/model.ts (x2), models/model_x4.pt -> models/model_x4.ts (x4).
# Run it again whenever weights are replaced (e.g. after `monai.bundle run publish`):
#   bundles/export_torchscript.sh [BUNDLE...]        (default: all three)
# tests/bundles/test_bundles.py checks that each .ts gives the eager network's output.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-$here/../.venv/bin/python}
bundles=("$@")
[ ${#bundles[@]} -gt 0 ] || bundles=(edsr_m srcnn_srgan_hybrid attention_residual)
for b in "${bundles[@]}"; do
  for scale in 2 4; do
    name=$([ "$scale" = 2 ] && echo model || echo "model_x$scale")
    (cd "$here/$b" && "$python" -m monai.bundle ckpt_export network_def --filepath "models/$name.ts" \
      --ckpt_file "models/$name.pt" --meta_file configs/metadata.json --config_file configs/inference.json \
      --scale "$scale" > /dev/null)
    echo "$b: models/$name.ts from models/$name.pt (sha256 $(sha256sum "$here/$b/models/$name.pt" | cut -c1-16))"
  done
done
