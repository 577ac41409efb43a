#!/bin/sh
# Entrypoint of the blockdist image, after tini: run the command given.
#
# Two conventions of the official Dask images are kept:
# - EXTRA_PIP_PACKAGES="pkg1 pkg2" installs packages (for the image's user) before the
#   command starts. Prefer building a derived image: this runs at every container start.
# - dask-scheduler / dask-worker, the old command names that the `dask` Helm chart still
#   runs, are mapped onto `dask scheduler` / `dask worker`.
set -eu

if [ -n "${EXTRA_PIP_PACKAGES:-}" ]; then
    echo "entrypoint: pip install --user $EXTRA_PIP_PACKAGES" >&2
    # The list is split into words on purpose: one package per word.
    # shellcheck disable=SC2086
    python -m pip install --no-cache-dir --user $EXTRA_PIP_PACKAGES
fi

case "${1:-}" in
    dask-scheduler) shift; set -- dask scheduler "$@" ;;
    dask-worker) shift; set -- dask worker "$@" ;;
    "") set -- blockdist --help ;;
esac

exec "$@"
