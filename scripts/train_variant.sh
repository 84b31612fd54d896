#!/usr/bin/env bash
# Train one recipe variant of a bundle into runs/<name>/ (the ablation and capacity tables of the model card):
#   scripts/train_variant.sh NAME BUNDLE [monai.bundle overrides...]
# The run never touches the bundle's models/: its best weights go to runs/<name>/model.pt. Rerunning the same
# command resumes from the newest checkpoint in runs/<name>/. Log: runs/<name>.log.
set -euo pipefail
name=$1 bundle=$2; shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
dataset=${DATASET_DIR:-$root/../shared/data}
out="$root/runs/$name"
mkdir -p "$out"
cd "$root/bundles/$bundle"
start=$(date +%s)
echo "== $(date -u +%FT%TZ) $name ($bundle): $*" >> "$out.log"
OMP_NUM_THREADS=${THREADS:-1} "$python" -m monai.bundle run training --meta_file configs/metadata.json \
    --config_file configs/train.json --logging_file configs/logging.conf --dataset_dir "$dataset" \
    --output_dir "$out" --export_to "$out/model.pt" --num_threads "${THREADS:-1}" "$@" >> "$out.log" 2>&1
echo "$name: done in $(( $(date +%s) - start )) s" | tee -a "$out.log"
