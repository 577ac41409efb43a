"""plan, memory and kernel import nothing but the standard library and numpy."""

import subprocess
import sys


def test_pure_modules_import_neither_zarr_nor_dask():
    code = (
        "import sys\n"
        "import blockdist.plan, blockdist.memory, blockdist.kernel, blockdist.units\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('zarr', 'dask', 'distributed')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_api_is_reachable_from_the_package():
    code = "import blockdist; print(blockdist.matmul.__module__, blockdist.plan.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["blockdist.api", "blockdist"]
