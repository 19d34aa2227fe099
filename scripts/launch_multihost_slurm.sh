#!/usr/bin/env bash
# 8 hosts x 8 GPUs: one process per host, each driving its 8 local GPUs.
# siamgpt_jax.parallel.distributed.initialize() reads SLURM_NTASKS / SLURM_PROCID and takes the first
# host of SLURM_JOB_NODELIST as coordinator (port from SIAMGPT_COORDINATOR_PORT, else 20000 + job id
# mod 20000, so two jobs sharing a first node do not collide).
# The mesh comes from the config (MESH adds overrides, e.g. MESH="mesh.fsdp=8 mesh.dcn.data=-1").
#
#   sbatch scripts/launch_multihost_slurm.sh [key=value ...]
#   CONFIG=configs/other.yaml MESH="mesh.data=-1 mesh.fsdp=4 mesh.dcn.data=-1" sbatch scripts/launch_multihost_slurm.sh
#
# Arguments are extra config overrides (after the mesh ones, so they win); TRAIN_FLAGS adds CLI flags
# (e.g. "--resume --no-progress"). tests/parallel/test_launch_slurm.py runs this script with a fake
# srun: 2 local processes on CPU devices.
#
#SBATCH --job-name=siamgpt-sft
#SBATCH --nodes=8
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --exclusive
#SBATCH --time=48:00:00
set -euo pipefail

CONFIG=${CONFIG:-configs/qwen3-32b-sft.yaml}
MESH=${MESH:-}
TRAIN_FLAGS=${TRAIN_FLAGS:-}
# XLA's share of GPU memory: `siamgpt-jax train` sets XLA_PYTHON_CLIENT_MEM_FRACTION to
# siamgpt_jax/layout/planner.py GPU_MEMORY_FRACTION (the planner's budget) unless it is set here.
export NCCL_IB_DISABLE=${NCCL_IB_DISABLE:-0}

# Open MPI instead of SLURM: mpirun -np 8 --map-by ppr:1:node -x SIAMGPT_COORDINATOR=<host0>:12355 \
#     siamgpt-jax train --config "$CONFIG"
# shellcheck disable=SC2086  # MESH and TRAIN_FLAGS are word lists
srun --kill-on-bad-exit=1 siamgpt-jax train --config "$CONFIG" $TRAIN_FLAGS $MESH "$@"
