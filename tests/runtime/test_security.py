"""blockdist.security: TLS options → distributed.security.Security.

The certificates come from deploy/tls/make-certs.sh, so these tests also show that the
script's output is what Dask accepts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import dask.config
import distributed  # noqa: F401 - load its config defaults before any dask.config.set
import pytest

from blockdist.errors import BlockdistError, InputError
from blockdist.runtime.security import (
    TLSOptionsError,
    add_tls_arguments,
    security_from_args,
    security_from_options,
)
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
MAKE_CERTS = ROOT / "deploy" / "tls" / "make-certs.sh"

pytestmark = [pytest.mark.tls]
require(shutil.which("openssl"), "needs openssl")


def make_certs(outdir: Path, *sans: str) -> Path:
    subprocess.run(
        ["bash", str(MAKE_CERTS), str(outdir), *sans],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return outdir


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("tls") / "certs")


@pytest.fixture(autouse=True)
def _no_tls_config():
    """Each test starts from a Dask configuration without TLS."""
    with dask.config.set(
        {
            "distributed.comm.require-encryption": None,
            "distributed.comm.tls.ca-file": None,
            "distributed.comm.tls.client.cert": None,
            "distributed.comm.tls.client.key": None,
        }
    ):
        yield


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}: dask.config.set replaces nested dicts whole."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def opts(certs: Path) -> dict[str, str]:
    return {
        "tls_ca_file": str(certs / "ca.pem"),
        "tls_cert": str(certs / "client.pem"),
        "tls_key": str(certs / "client-key.pem"),
    }


def test_import_has_no_side_effects():
    """blockdist.security itself imports neither dask nor distributed.

    The package's ``__init__`` is bypassed (a bare package object stands in for it), so
    this looks at this module alone, whatever the rest of the package imports.
    """
    code = (
        "import sys, types\n"
        "pkg = types.ModuleType('blockdist'); pkg.__path__ = [sys.argv[1]]\n"
        "sys.modules['blockdist'] = pkg\n"
        "import blockdist.runtime.security\n"
        "loaded = sorted(m for m in ('dask', 'distributed', 'zarr', 'numpy') if m in sys.modules)\n"
        "print(','.join(loaded) or 'none')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "blockdist")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "none"
    assert out.stderr == ""


def test_no_options_and_no_config_is_plain_tcp():
    assert security_from_options() is None
    assert security_from_options(None, None, None) is None
    assert security_from_options("", "", "") is None


def test_all_three_options_give_a_client_security(certs: Path):
    sec = security_from_options(**opts(certs))
    assert sec is not None
    assert sec.require_encryption is True
    assert sec.tls_ca_file == str(certs / "ca.pem")
    assert sec.tls_client_cert == str(certs / "client.pem")
    assert sec.tls_client_key == str(certs / "client-key.pem")
    args = sec.get_connection_args("client")
    assert isinstance(args["ssl_context"], ssl.SSLContext)
    assert args["ssl_context"].verify_mode == ssl.CERT_REQUIRED


def test_relative_and_pathlike_paths_become_absolute(certs: Path, monkeypatch):
    monkeypatch.chdir(certs.parent)
    sec = security_from_options(
        Path(certs.name) / "ca.pem", f"{certs.name}/client.pem", f"{certs.name}/client-key.pem"
    )
    assert sec is not None
    assert os.path.isabs(sec.tls_ca_file)
    assert sec.tls_ca_file == str(certs / "ca.pem")


@pytest.mark.parametrize("role", ["scheduler", "worker", "client"])
def test_every_role_from_make_certs_is_accepted(certs: Path, role: str):
    """Security builds listening and connecting TLS contexts from each pair of files."""
    from distributed.security import Security

    sec = Security(
        tls_ca_file=str(certs / "ca.pem"),
        **{
            f"tls_{role}_cert": str(certs / f"{role}.pem"),
            f"tls_{role}_key": str(certs / f"{role}-key.pem"),
        },
        require_encryption=True,
    )
    assert isinstance(sec.get_listen_args(role)["ssl_context"], ssl.SSLContext)
    assert isinstance(sec.get_connection_args(role)["ssl_context"], ssl.SSLContext)


@pytest.mark.parametrize(
    "given, missing",
    [
        (("tls_ca_file",), ["--tls-cert", "--tls-key"]),
        (("tls_cert",), ["--tls-ca-file", "--tls-key"]),
        (("tls_key",), ["--tls-ca-file", "--tls-cert"]),
        (("tls_ca_file", "tls_cert"), ["--tls-key"]),
        (("tls_cert", "tls_key"), ["--tls-ca-file"]),
    ],
)
def test_partial_options_name_what_is_missing(certs: Path, given, missing):
    kwargs = {k: v for k, v in opts(certs).items() if k in given}
    with pytest.raises(TLSOptionsError) as info:
        security_from_options(**kwargs)
    message = str(info.value)
    for option in missing:
        assert option in message
    assert "required" in message


def test_tls_scheduler_without_tls_is_refused_at_once():
    with pytest.raises(TLSOptionsError, match=r"tls://10\.0\.0\.1:8786 speaks TLS.*--tls-ca-file"):
        security_from_options(scheduler="tls://10.0.0.1:8786")
    assert security_from_options(scheduler="tcp://10.0.0.1:8786") is None
    assert security_from_options(scheduler="10.0.0.1:8786") is None
    ns = argparse.Namespace(tls_ca_file=None, tls_cert=None, tls_key=None,
                            scheduler="TLS://h:1")
    with pytest.raises(TLSOptionsError):
        security_from_args(ns)


def test_tls_scheduler_with_options(certs: Path):
    sec = security_from_options(**opts(certs), scheduler="tls://127.0.0.1:8786")
    assert sec is not None and sec.require_encryption


def test_error_is_a_valueerror_and_a_blockdist_input_error(certs: Path):
    with pytest.raises(ValueError):
        security_from_options(tls_ca_file=str(certs / "ca.pem"))
    assert issubclass(TLSOptionsError, InputError)
    assert issubclass(TLSOptionsError, BlockdistError)


@pytest.mark.parametrize("which, option", [
    ("tls_ca_file", "--tls-ca-file"), ("tls_cert", "--tls-cert"), ("tls_key", "--tls-key"),
])
def test_missing_file_names_option_and_path(certs: Path, tmp_path: Path, which, option):
    kwargs = opts(certs)
    missing = tmp_path / "nope" / f"{which}.pem"
    kwargs[which] = str(missing)
    with pytest.raises(TLSOptionsError) as info:
        security_from_options(**kwargs)
    assert option in str(info.value)
    assert str(missing) in str(info.value)
    assert "no such file" in str(info.value)


def test_directory_instead_of_file(certs: Path):
    kwargs = opts(certs)
    kwargs["tls_cert"] = str(certs)
    with pytest.raises(TLSOptionsError, match="--tls-cert: not a regular file"):
        security_from_options(**kwargs)


def test_key_of_another_certificate_is_refused_without_printing_it(certs: Path, tmp_path):
    kwargs = opts(certs)
    kwargs["tls_key"] = str(certs / "worker-key.pem")
    with pytest.raises(TLSOptionsError) as info:
        security_from_options(**kwargs)
    message = str(info.value)
    assert "--tls-key" in message and str(certs / "worker-key.pem") in message
    key_text = (certs / "worker-key.pem").read_text()
    body = "".join(key_text.strip().splitlines()[1:-1])
    assert "PRIVATE KEY" not in message
    assert body[:16] not in message


def test_not_a_pem_ca_file(certs: Path, tmp_path: Path):
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("this is not a certificate\n")
    kwargs = opts(certs)
    kwargs["tls_ca_file"] = str(bogus)
    with pytest.raises(TLSOptionsError, match="--tls-ca-file: not a PEM CA certificate"):
        security_from_options(**kwargs)


def test_dask_config_with_client_tls_is_used(certs: Path):
    with dask.config.set(
        {
            "distributed.comm.tls.ca-file": str(certs / "ca.pem"),
            "distributed.comm.tls.client.cert": str(certs / "client.pem"),
            "distributed.comm.tls.client.key": str(certs / "client-key.pem"),
            "distributed.comm.require-encryption": True,
        }
    ):
        sec = security_from_options()
    assert sec is not None
    assert sec.tls_client_cert == str(certs / "client.pem")
    assert sec.require_encryption is True


def test_dask_config_requiring_encryption_without_certs_is_an_error():
    with dask.config.set({"distributed.comm.require-encryption": True}), pytest.raises(
        TLSOptionsError, match="require-encryption"
    ):
        security_from_options()


def test_dask_config_naming_a_missing_file(certs: Path, tmp_path: Path):
    with dask.config.set(
        {
            "distributed.comm.tls.ca-file": str(tmp_path / "gone.pem"),
            "distributed.comm.tls.client.cert": str(certs / "client.pem"),
        }
    ), pytest.raises(TLSOptionsError, match=r"distributed\.comm\.tls\.ca-file: no such"):
        security_from_options()


def test_options_win_over_config(certs: Path, tmp_path: Path):
    with dask.config.set({"distributed.comm.tls.ca-file": str(tmp_path / "gone.pem")}):
        sec = security_from_options(**opts(certs))
    assert sec is not None and sec.tls_ca_file == str(certs / "ca.pem")


def test_the_shipped_dask_tls_yaml_configures_every_role(certs: Path):
    """deploy/tls/dask-tls.yaml, with its folder pointed at our certs, works as config."""
    import yaml

    text = (ROOT / "deploy" / "tls" / "dask-tls.yaml").read_text()
    assert "/etc/blockdist/tls/" in text
    config = yaml.safe_load(text.replace("/etc/blockdist/tls/", f"{certs}/"))
    with dask.config.set(flatten(config)):
        from distributed.security import Security

        assert dask.config.get("distributed.comm.default-scheme") == "tls"
        sec = Security()
        assert sec.require_encryption is True
        for role in ("scheduler", "worker", "client"):
            assert isinstance(sec.get_listen_args(role)["ssl_context"], ssl.SSLContext)
        assert security_from_options() is not None


def test_argparse_options(certs: Path):
    parser = argparse.ArgumentParser(prog="blockdist matmul")
    add_tls_arguments(parser)
    ns = parser.parse_args([])
    assert (ns.tls_ca_file, ns.tls_cert, ns.tls_key) == (None, None, None)
    assert security_from_args(ns) is None
    o = opts(certs)
    ns = parser.parse_args(
        ["--tls-ca-file", o["tls_ca_file"], "--tls-cert", o["tls_cert"], "--tls-key", o["tls_key"]]
    )
    sec = security_from_args(ns)
    assert sec is not None and sec.tls_client_key == o["tls_key"]
    help_text = parser.format_help()
    for option in ("--tls-ca-file", "--tls-cert", "--tls-key"):
        assert option in help_text
