#!/usr/bin/env bash
# Batch script: blockdist on a Dask cluster of MPI ranks (dask-mpi) in one SLURM job.
#
#   sbatch deploy/hpc/mpi_matmul.sh /scratch/a.zarr /scratch/b.zarr /scratch/c.zarr
#
# 2 nodes × 4 ranks: rank 0 is the scheduler, rank 1 the client, ranks 2-7 are workers
# with 8 threads each. Site-specific lines are marked "site:".
#SBATCH --job-name=blockdist-mpi
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --mem=0
#SBATCH --time=02:00:00
#SBATCH --output=blockdist-mpi-%j.out
# site: #SBATCH --partition=... and #SBATCH --account=...
set -euo pipefail

if [ $# -lt 3 ]; then
    echo "usage: sbatch mpi_matmul.sh A B OUT [mpi_matmul.py options]" >&2
    exit 2
fi

# site: load your MPI and the Python environment that has blockdist, dask-mpi, mpi4py.
# module load openmpi
# shellcheck disable=SC1090,SC1091
source "${BLOCKDIST_VENV:-$HOME/venvs/blockdist}/bin/activate"

export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
here=${SLURM_SUBMIT_DIR:-$(pwd)}
srun --cpu-bind=cores python "$here/deploy/hpc/mpi_matmul.py" "$@" \
    --nthreads "${SLURM_CPUS_PER_TASK:-1}" \
    --local-directory "${TMPDIR:-/tmp}"
