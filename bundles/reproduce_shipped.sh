#!/usr/bin/env bash
# Reproduce every shipped weight file (models/model.pt = x2, models/model_x4.pt) of the three bundles,
# stage by stage, with the budgets their model cards report (2 CPU cores: about 3 hours in all).
#
# Stage 1 trains on a mix of degradations (60% classic bicubic, 40% the modality's physics simulator);
# the last stage fine-tunes on the classic protocol alone at a lower learning rate: on held-out images
# this gained 0.4-0.7 dB under the classic protocol (see the model cards). x4 starts from the x2 weights.
# A stage's --pretrained may name the file it will overwrite: it is read at the start, written at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
T="$here/train_shipped.sh"
FT=(--learning_rate 0.0002 --p_classic 1.0)

$T edsr_m 2 30
$T edsr_m 4 12 --epoch_length 60 --patch_size 128
$T edsr_m 2 10 --pretrained "$here/edsr_m/models/model.pt" --learning_rate 0.0002
$T edsr_m 2 10 --pretrained "$here/edsr_m/models/model.pt" "${FT[@]}"
$T edsr_m 4 8 --epoch_length 60 --patch_size 128 --pretrained "$here/edsr_m/models/model_x4.pt" "${FT[@]}"
$T edsr_m 2 30 --pretrained "$here/edsr_m/models/model.pt" "${FT[@]}"
$T edsr_m 4 15 --epoch_length 60 --patch_size 128 --pretrained "$here/edsr_m/models/model_x4.pt" "${FT[@]}"

$T attention_residual 2 15 --epoch_length 60
$T attention_residual 4 8 --epoch_length 60 --patch_size 128
$T attention_residual 2 8 --epoch_length 60 --pretrained "$here/attention_residual/models/model.pt" "${FT[@]}"
$T attention_residual 4 5 --epoch_length 60 --patch_size 128 --pretrained "$here/attention_residual/models/model_x4.pt" "${FT[@]}"

$T srcnn_srgan_hybrid 2 10 --epoch_length 60
$T srcnn_srgan_hybrid 4 6 --epoch_length 60 --patch_size 128
$T srcnn_srgan_hybrid 2 6 --epoch_length 60 --pretrained "$here/srcnn_srgan_hybrid/models/model.pt" "${FT[@]}"
$T srcnn_srgan_hybrid 4 4 --epoch_length 60 --patch_size 128 --pretrained "$here/srcnn_srgan_hybrid/models/model_x4.pt" "${FT[@]}"
