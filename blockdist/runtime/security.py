"""Mutual TLS between a blockdist client and a Dask cluster.

A Dask cluster secured with TLS (``dask scheduler --protocol tls --tls-ca-file …``)
accepts only peers that present a certificate signed by the cluster's CA. The client
side needs three files::

    --tls-ca-file ca.pem        the CA that signed the scheduler's and workers' certificates
    --tls-cert    client.pem    this client's certificate, signed by the same CA
    --tls-key     client-key.pem  its private key

:func:`add_tls_arguments` adds those options to an :mod:`argparse` parser, and
:func:`security_from_options` turns them into a :class:`distributed.security.Security`
(or ``None`` for a plain TCP cluster). When no option is given, Dask's own configuration
is honoured: ``distributed.comm.tls.ca-file``, ``distributed.comm.tls.client.cert`` and
``…client.key`` (for example from ``deploy/tls/dask-tls.yaml`` or the environment variables
``DASK_DISTRIBUTED__COMM__TLS__CA_FILE`` …).

Files are checked up front, so a typo is reported as ``--tls-key: no such file: …``
rather than as an SSL error deep inside a connection attempt. Messages name options and
paths only; the contents of a key are never read into an error or a log.

Importing this module imports neither dask nor distributed.
"""

from __future__ import annotations

import os
import ssl
from typing import TYPE_CHECKING, Any

from ..errors import TLSOptionsError

if TYPE_CHECKING:  # pragma: no cover
    import argparse

    from distributed.security import Security

__all__ = [
    "TLSOptionsError",
    "add_tls_arguments",
    "security_from_args",
    "security_from_options",
]

#: The three options, in the order they are reported, with their argparse ``dest``.
_OPTIONS: tuple[tuple[str, str], ...] = (
    ("--tls-ca-file", "tls_ca_file"),
    ("--tls-cert", "tls_cert"),
    ("--tls-key", "tls_key"),
)

#: Dask configuration keys a client reads its TLS files from.
_CONFIG_KEYS: tuple[tuple[str, str], ...] = (
    ("distributed.comm.tls.ca-file", "tls_ca_file"),
    ("distributed.comm.tls.client.cert", "tls_client_cert"),
    ("distributed.comm.tls.client.key", "tls_client_key"),
)


def add_tls_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add ``--tls-ca-file``, ``--tls-cert`` and ``--tls-key`` to *parser*.

    The values land in ``tls_ca_file``, ``tls_cert`` and ``tls_key`` (``None`` when not
    given); pass them to :func:`security_from_options`, or the namespace to
    :func:`security_from_args`. Returns the argument group that holds them.
    """
    group = parser.add_argument_group(
        "TLS",
        "Connect to a scheduler that requires mutual TLS (a tls:// address). Give all "
        "three options, or none to use Dask's configuration (distributed.comm.tls.*).",
    )
    group.add_argument(
        "--tls-ca-file",
        metavar="PATH",
        default=None,
        help="CA certificate(s) in PEM format that signed the cluster's certificates",
    )
    group.add_argument(
        "--tls-cert",
        metavar="PATH",
        default=None,
        help="this client's certificate in PEM format, signed by that CA",
    )
    group.add_argument(
        "--tls-key",
        metavar="PATH",
        default=None,
        help="the private key of --tls-cert in PEM format (keep it mode 0600)",
    )
    return group


def security_from_args(args: argparse.Namespace) -> Security | None:
    """:func:`security_from_options` for a namespace parsed with :func:`add_tls_arguments`.

    A ``scheduler`` attribute, when the namespace has one, is checked as well.
    """
    scheduler = getattr(args, "scheduler", None)
    return security_from_options(
        tls_ca_file=getattr(args, "tls_ca_file", None),
        tls_cert=getattr(args, "tls_cert", None),
        tls_key=getattr(args, "tls_key", None),
        scheduler=scheduler if isinstance(scheduler, str) else None,
    )


def security_from_options(
    tls_ca_file: str | os.PathLike[str] | None = None,
    tls_cert: str | os.PathLike[str] | None = None,
    tls_key: str | os.PathLike[str] | None = None,
    *,
    scheduler: str | None = None,
) -> Security | None:
    """Build the client's :class:`~distributed.security.Security`, or ``None``.

    Parameters
    ----------
    tls_ca_file, tls_cert, tls_key
        Paths to the CA certificate, the client certificate and its private key, all PEM.
        Give all three or none.
    scheduler
        The scheduler address, if known. A ``tls://`` address with no TLS from the options
        or the configuration is refused at once, instead of failing deep inside a
        connection attempt after the connect timeout.

    Returns
    -------
    Security or None
        With all three files: a ``Security`` that requires encryption and presents the
        client certificate. With none: a ``Security`` read from Dask's configuration when
        that configures client TLS or requires encryption, else ``None`` (plain TCP).

    Raises
    ------
    TLSOptionsError
        Only some of the three options are given; a file is missing, is not a regular
        file or cannot be read; the certificate and key do not load (for example the key
        does not belong to the certificate); a ``tls://`` scheduler without any TLS.
        Also a ``ValueError`` and a blockdist ``InputError``. The message names the
        option and the path, never file contents.
    """
    given = {
        dest: _as_path(value)
        for (_, dest), value in zip(_OPTIONS, (tls_ca_file, tls_cert, tls_key), strict=True)
    }
    if not any(given.values()):
        security = _security_from_config()
        if security is None and scheduler and scheduler.strip().lower().startswith("tls://"):
            raise TLSOptionsError(
                f"the scheduler {scheduler} speaks TLS: give --tls-ca-file, --tls-cert and "
                "--tls-key (or set distributed.comm.tls.* in Dask's configuration)"
            )
        return security

    return _security_from_files(given)


def _security_from_files(given: dict[str, str | None]) -> Security:
    """A client ``Security`` from the three files, each checked and loaded first."""
    missing = [opt for opt, dest in _OPTIONS if not given[dest]]
    if missing:
        present = [opt for opt, dest in _OPTIONS if given[dest]]
        raise TLSOptionsError(
            f"{_join(missing)} {'is' if len(missing) == 1 else 'are'} required with "
            f"{_join(present)}: mutual TLS needs the CA file, the client certificate "
            "and its key (--tls-ca-file, --tls-cert, --tls-key)"
        )
    paths: dict[str, str] = {}
    for opt, dest in _OPTIONS:
        path = given[dest]
        assert path is not None
        _check_file(opt, path)
        paths[dest] = path
    _check_loads(
        ("--tls-ca-file", paths["tls_ca_file"]),
        ("--tls-cert", paths["tls_cert"]),
        ("--tls-key", paths["tls_key"]),
    )

    from distributed.security import Security

    return Security(
        tls_ca_file=paths["tls_ca_file"],
        tls_client_cert=paths["tls_cert"],
        tls_client_key=paths["tls_key"],
        require_encryption=True,
    )


def _security_from_config() -> Security | None:
    """The ``Security`` that Dask's configuration describes for a client, or ``None``."""
    import dask.config

    values: dict[str, Any] = {
        field: dask.config.get(key, default=None) for key, field in _CONFIG_KEYS
    }
    require = dask.config.get("distributed.comm.require-encryption", default=None)
    if not any(values.values()) and not require:
        return None

    ca, cert = values["tls_ca_file"], values["tls_client_cert"]
    if not ca or not cert:
        absent = [key for key, field in _CONFIG_KEYS[:2] if not values[field]]
        why = (
            "distributed.comm.require-encryption is true"
            if require and not any(values.values())
            else "client TLS is partly configured"
        )
        raise TLSOptionsError(
            f"{why} in the Dask configuration but {_join(absent)} "
            f"{'is' if len(absent) == 1 else 'are'} not set: give --tls-ca-file, "
            "--tls-cert and --tls-key, or complete distributed.comm.tls.*"
        )
    # Configuration may hold PEM text itself (Security.temporary does this); only
    # paths are checked here.
    for key, field in _CONFIG_KEYS:
        value = values[field]
        if isinstance(value, str) and value and "\n" not in value:
            _check_file(key, os.path.expanduser(value))

    from distributed.security import Security

    return Security()


def _as_path(value: str | os.PathLike[str] | None) -> str | None:
    if value is None:
        return None
    text = os.fspath(value)
    if not text:
        return None
    return os.path.abspath(os.path.expanduser(text))


def _check_file(name: str, path: str) -> None:
    if not os.path.exists(path):
        raise TLSOptionsError(f"{name}: no such file: {path}")
    if not os.path.isfile(path):
        raise TLSOptionsError(f"{name}: not a regular file: {path}")
    if not os.access(path, os.R_OK):
        raise TLSOptionsError(f"{name}: permission denied (cannot read): {path}")


def _check_loads(ca: tuple[str, str], cert: tuple[str, str], key: tuple[str, str]) -> None:
    """Load the files the way ``Security`` will, to report a bad file by its option.

    ``ssl`` errors carry a library reason (``PEM lib``, ``KEY_VALUES_MISMATCH``), never
    the contents of the files.
    """
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    try:
        ctx.load_verify_locations(cafile=ca[1])
    except (ssl.SSLError, ValueError) as exc:
        raise TLSOptionsError(
            f"{ca[0]}: not a PEM CA certificate: {ca[1]} ({_reason(exc)})"
        ) from None
    try:
        # An encrypted key would make OpenSSL prompt on the terminal; an empty password
        # makes it fail instead (Dask cannot use encrypted keys either).
        ctx.load_cert_chain(certfile=cert[1], keyfile=key[1], password=lambda: b"")
    except (ssl.SSLError, ValueError) as exc:
        raise TLSOptionsError(
            f"{cert[0]} {cert[1]} and {key[0]} {key[1]} do not load as a certificate "
            f"and its private key ({_reason(exc)}; the key must be unencrypted PEM and "
            "belong to the certificate)"
        ) from None


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason) if reason else type(exc).__name__


def _join(options: list[str]) -> str:
    if len(options) <= 1:
        return "".join(options)
    return ", ".join(options[:-1]) + " and " + options[-1]
