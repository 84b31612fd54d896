#!/usr/bin/env bash
# Train one shipped model exactly as its weights were produced (see the bundle's docs/README.md):
#   bundles/train_shipped.sh BUNDLE SCALE EPOCHS [extra monai.bundle overrides...]
# Runs the bundle's own configs/train.json on ../shared/data (override DATASET_DIR), starting
# fresh (RESUME=1 continues from runs/x<scale>/), and appends its log to runs/train_x<scale>.log.
# Training writes its weights to runs/x<scale>/ only; the stage then publishes them into models/
# (`monai.bundle run publish`, logged with checksums) so the next stage starts from them.
# Re-export TorchScript afterwards: bundles/export_torchscript.sh.
# bundles/reproduce_shipped.sh runs every stage of every shipped weight file in order.
set -euo pipefail
bundle=$1 scale=$2 epochs=$3; shift 3
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-$here/../.venv/bin/python}
dataset=${DATASET_DIR:-$here/../../shared/data}
cd "$here/$bundle"
[ "${RESUME:-0}" = 1 ] || rm -rf "runs/x$scale"
mkdir -p runs
start=$(date +%s)
echo "== $(date -u +%FT%TZ) $bundle x$scale: $epochs epochs $*" >> "runs/train_x$scale.log"
"$python" -m monai.bundle run training --meta_file configs/metadata.json --config_file configs/train.json \
    --logging_file configs/logging.conf --dataset_dir "$dataset" --scale "$scale" --num_epochs "$epochs" "$@" \
    >> "runs/train_x$scale.log" 2>&1
"$python" -m monai.bundle run publish --meta_file configs/metadata.json --config_file configs/train.json \
    --logging_file configs/logging.conf --scale "$scale" >> "runs/train_x$scale.log" 2>&1
echo "$bundle x$scale: $epochs epochs in $(( $(date +%s) - start )) s" | tee -a "runs/train_x$scale.log"
