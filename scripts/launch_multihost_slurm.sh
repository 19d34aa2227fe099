#!/usr/bin/env bash
# 8 hosts x 8 GPUs: one process per host, each driving its 8 local GPUs.
# siamgpt_jax.parallel.distributed.initialize() reads SLURM_NTASKS / SLURM_PROCID and takes the first
# host of SLURM_JOB_NODELIST as coordinator (port from SIAMGPT_COORDINATOR_PORT, else from the job id).
# The mesh section of the config says data spans the hosts and FSDP stays inside one:
#     mesh: {fsdp: 8, dcn: {data: -1}}
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
export SIAMGPT_COORDINATOR_PORT=${SIAMGPT_COORDINATOR_PORT:-12355}
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.92}
export NCCL_IB_DISABLE=0

# Open MPI instead of SLURM: mpirun -np 8 --map-by ppr:1:node -x SIAMGPT_COORDINATOR=<host0>:12355 \
#     siamgpt-jax train --config "$CONFIG" mesh.fsdp=8 mesh.dcn.data=-1
srun --kill-on-bad-exit=1 siamgpt-jax train --config "$CONFIG" mesh.fsdp=8 mesh.dcn.data=-1 "$@"
