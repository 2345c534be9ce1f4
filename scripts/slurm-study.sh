#!/bin/bash
# A whole study as a Slurm job array: each array task runs one deterministic slice of the stages
# (`spillover study --shard i/n`), waiting for any stage another task holds (the data stage, a
# shared target's collection); a last job that depends on the array gathers results and report.
#
#   sbatch --array=0-7 scripts/slurm-study.sh configs/paper-qwen.yaml
#   sbatch --dependency=afterok:<array job id> --wrap "spillover study configs/paper-qwen.yaml"
#
# Every task must see the same study directory (output_dir) on a filesystem with working flock
# (local disk, NFSv4, Lustre mounted with flock). Adjust the resources to your cluster.
#SBATCH --job-name=spillover
#SBATCH --gpus=1
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
set -euo pipefail
CONFIG=${1:?usage: sbatch --array=0-N scripts/slurm-study.sh CONFIG [spillover study options]}
shift
spillover study "$CONFIG" --shard "${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT}" "$@"
