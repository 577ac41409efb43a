"""Where an ``s3://`` array is and how to reach it: :class:`S3Config` (used by :mod:`.s3store`).

``s3://bucket/key/prefix.zarr`` plus storage options plus the usual ``AWS_*`` environment
variables become an :class:`S3Config`, captured once where the URL is located, so the store
carries its whole configuration to worker processes. Options win over the environment, and
credentials come as one set, never mixed from both. Messages name the URL, never a secret
(:func:`describe` and :func:`classify` turn a client library's error into one line).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import (
    ArrayNotFoundError,
    BucketNotFoundError,
    InputError,
    StorageAccessError,
    StorageUnreachableError,
)
from . import credentials

BACKENDS = ("obstore", "s3fs")
#: benchmarks/s3_read.py on moto: panel reads at ~280 MB/s with obstore (98 % of a plain
#: concurrent obstore get), ~190 MB/s with s3fs.
DEFAULT_BACKEND = "obstore"

# --------------------------------------------------------------------------- configuration

#: Canonical option names and what else they may be called (s3fs and AWS spellings).
_ALIASES = {
    "endpoint_url": ("endpoint", "aws_endpoint_url", "aws_endpoint", "aws_endpoint_url_s3"),
    "access_key_id": ("key", "aws_access_key_id"),
    "secret_access_key": ("secret", "aws_secret_access_key"),
    "session_token": ("token", "aws_session_token"),
    "region": ("region_name", "aws_region", "aws_default_region"),
    "allow_http": ("aws_allow_http",),
    "anon": ("anonymous", "skip_signature", "aws_skip_signature"),
    "backend": (),
    "retries": ("max_retries",),
    "timeout": (),
    "connect_timeout": (),
    "max_requests": (),
    "credentials": (),
}
_NAMES = {alias: name for name, aliases in _ALIASES.items() for alias in (name, *aliases)}
#: Environment variables, first found wins; storage options win over all of them.
_ENV = {
    "endpoint_url": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    "access_key_id": ("AWS_ACCESS_KEY_ID",),
    "secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
    "session_token": ("AWS_SESSION_TOKEN",),
    "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "allow_http": ("AWS_ALLOW_HTTP",),
    "anon": ("AWS_SKIP_SIGNATURE",),
    "backend": ("BLOCKDIST_S3_BACKEND",),
}
CREDENTIALS = ("access_key_id", "secret_access_key", "session_token")


@dataclass(frozen=True)
class S3Config:
    """Everything needed to reach one array's prefix in a bucket (hashable, picklable)."""

    bucket: str
    prefix: str  #: the array's key prefix, without leading or trailing "/"
    endpoint_url: str | None = None  #: None: AWS itself
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    allow_http: bool = False
    anon: bool = False
    backend: str = DEFAULT_BACKEND
    retries: int = 10  #: per request, with exponential backoff and jitter
    timeout: float = 60.0  #: seconds for a whole request
    connect_timeout: float = 5.0
    max_requests: int | None = None  #: in flight per store; None: zarr's async.concurrency
    #: "given" (storage options or this process's AWS_* variables) or "worker": each process
    #: that opens the store takes them from its own environment or instance role
    credentials: str = "given"
    #: the reference a pickled config carries instead of its secrets (see :mod:`.credentials`)
    credentials_ref: str | None = field(default=None, compare=False, repr=False)

    @property
    def url(self) -> str:
        """The credential-free URL people see: ``s3://bucket/prefix``."""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    @property
    def endpoint(self) -> str:
        """The endpoint for messages (without user info or query)."""
        if not self.endpoint_url:
            return "AWS S3"
        parts = urlsplit(self.endpoint_url)
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"

    @property
    def location(self) -> tuple[str, str, tuple[str, ...]]:
        """(endpoint, bucket, key parts): equal or nested locations are the same data."""
        return self.endpoint, self.bucket, tuple(p for p in self.prefix.split("/") if p)

    def secrets(self) -> list[str]:
        return [s for s in (self.secret_access_key, self.session_token, self.access_key_id) if s]

    # A config travels to workers inside every task that reads or writes its array: it goes
    # without its secrets (see blockdist.storage.credentials).
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        given = (self.access_key_id, self.secret_access_key, self.session_token)
        if any(given):
            if self.credentials == "given":
                state["credentials_ref"] = credentials.reference_for(given)
            state.update(dict.fromkeys(CREDENTIALS))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("credentials") == "worker":
            state.update(_environment_credentials(os.environ))
        elif state.get("credentials_ref") and not state.get("access_key_id"):
            # Not found: a process that never uses the store (the scheduler, which unpickles
            # the graph) has no need of them; one that does is refused (see missing_credentials).
            found = credentials.resolve(state["credentials_ref"])
            if found is not None:
                state.update(zip(CREDENTIALS, found, strict=True))
        self.__dict__.update(state)

    @property
    def missing_credentials(self) -> StorageAccessError | None:
        """Why this process cannot sign requests, if it was never given the job's credentials."""
        if self.credentials_ref is None or self.access_key_id or self.credentials == "worker":
            return None
        return StorageAccessError(
            f"{self.url}: this process was not given the credentials of the job that sent this task "
            "(they reach workers by a worker plugin registered for each job)")


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise InputError(f"storage option {name}: expected true or false")


def _number(name: str, value: Any, kind: type, low: float) -> Any:
    try:
        number = kind(str(value).strip().removesuffix("s") if kind is float else value)
    except (TypeError, ValueError):
        raise InputError(f"storage option {name}: expected a number, got {str(value)[:20]!r}") from None
    if number < low:
        raise InputError(f"storage option {name}: must be at least {low}")
    return number


def _canonical(options: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key == "client_kwargs" and isinstance(value, Mapping):  # s3fs style
            out.update(_canonical({k: v for k, v in value.items() if k in ("endpoint_url", "region_name")}))
            continue
        name = _NAMES.get(str(key).lower().replace("-", "_"))
        if name is None:
            known = ", ".join(_ALIASES)
            raise InputError(f"unknown storage option {str(key)[:40]!r}; known options: {known}")
        if value is not None:
            out[name] = value
    return out


def shown(url: str) -> str:
    """``url`` without user info, query or fragment: fit for a message."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/a/b.zarr`` → ``("bucket", "a/b.zarr")``; refuses what it cannot be."""
    parts = urlsplit(url)
    shown_url = shown(url)
    if "@" in parts.netloc:
        raise InputError(f"{shown_url}: credentials in the URL are not supported; "
                         "use storage options or AWS_* environment variables")
    if parts.query or parts.fragment:
        raise InputError(f"{shown_url}: an s3:// URL takes no query or fragment")
    bucket, prefix = parts.netloc, parts.path.strip("/")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}", bucket):
        raise InputError(f"{shown_url}: {bucket!r} is not a bucket name; expected s3://bucket/path")
    return bucket, re.sub("/+", "/", prefix)


def _environment_credentials(environ: Mapping[str, str]) -> dict[str, str | None]:
    found = {name: next((environ[v] for v in _ENV[name] if environ.get(v)), None) for name in CREDENTIALS}
    return found if found["access_key_id"] else dict.fromkeys(CREDENTIALS)


def make_config(url: str, options: Mapping[str, Any] | None,
                environ: Mapping[str, str] | None = None) -> S3Config:
    """The config of ``url``: storage options over AWS_* variables over defaults.

    ``credentials="worker"`` takes no secret from the options; this process's AWS_* ones serve
    its own checks, and every process that opens the store uses its own.
    """
    bucket, prefix = parse_url(url)
    given = _canonical(options or {})
    environ = os.environ if environ is None else environ
    from_env = {}
    for name, variables in _ENV.items():
        value = next((environ[v] for v in variables if environ.get(v)), None)
        if value is not None:
            from_env[name] = value
    source = str(given.pop("credentials", "given")).lower()
    if source not in ("given", "worker"):
        raise InputError(f"storage option credentials: expected 'given' or 'worker', got {source[:20]!r}")
    if source == "worker" and any(name in given for name in CREDENTIALS):
        raise InputError("storage option credentials='worker' takes no key or secret: the workers use their "
                         "own (AWS_* environment variables or instance role)")
    if any(name in given for name in CREDENTIALS):  # credentials come as one set, not mixed
        from_env = {k: v for k, v in from_env.items() if k not in CREDENTIALS}
    merged = {**from_env, **given}
    endpoint = merged.get("endpoint_url")
    if endpoint is not None:
        endpoint = str(endpoint).rstrip("/")
        if urlsplit(endpoint).scheme not in ("http", "https") or not urlsplit(endpoint).hostname:
            raise InputError(f"{url}: the endpoint must be an http:// or https:// URL")
    backend = str(merged.get("backend", DEFAULT_BACKEND)).lower()
    if backend not in BACKENDS:
        raise InputError(f"storage option backend: expected one of {', '.join(BACKENDS)}")
    # An explicit http:// endpoint asks for plain HTTP; obstore wants that said.
    allow_http = (_flag("allow_http", merged["allow_http"]) if "allow_http" in merged
                  else bool(endpoint and endpoint.startswith("http://")))
    return S3Config(
        bucket=bucket, prefix=prefix, endpoint_url=endpoint,
        region=str(merged["region"]) if merged.get("region") else None,
        access_key_id=_text(merged.get("access_key_id")),
        secret_access_key=_text(merged.get("secret_access_key")),
        session_token=_text(merged.get("session_token")),
        allow_http=allow_http, anon=_flag("anon", merged.get("anon", False)), backend=backend,
        retries=_number("retries", merged.get("retries", 10), int, 0),
        timeout=_number("timeout", merged.get("timeout", 60), float, 0.1),
        connect_timeout=_number("connect_timeout", merged.get("connect_timeout", 5), float, 0.1),
        max_requests=(_number("max_requests", merged["max_requests"], int, 1)
                      if merged.get("max_requests") is not None else None),
        credentials=source,
    )


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


# --------------------------------------------------------------------------- errors

_DENIED = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken",
           "InvalidToken", "InvalidClientTokenId", "403 Forbidden", "401 Unauthorized", "Forbidden")
_UNREACHABLE = ("error sending request", "Could not connect", "onnection refused", "timed out",
                "dns error", "Name or service not known", "Connect timeout", "ConnectTimeout")
_NO_BUCKET = ("NoSuchBucket", "specified bucket does not exist")


def describe(error: BaseException, config: S3Config) -> str:
    """One line about ``error``, without the server's XML noise or any credential."""
    text, _, debug = str(error).partition("\n\nDebug source")
    if "TimedOut" in debug or "kind: Timeout" in debug:  # obstore names the cause only in its debug text
        text += f" (no answer within the {config.timeout:g} s timeout; storage option timeout)"
    code = re.search(r"<Code>(.*?)</Code>", text, re.S)
    if code:
        message = re.search(r"<Message>(.*?)</Message>", text, re.S)
        detail = code.group(1) + (f": {message.group(1)}" if message else "")
        text = re.sub(r"<\?xml.*|<Error>.*", detail, text, flags=re.S)
    text = mask(" ".join(text.split()) or type(error).__name__, config.secrets())
    return text[:400] + ("…" if len(text) > 400 else "")


def mask(text: str, secrets: list[str]) -> str:
    """``text`` with each secret that stands in it as a word of its own replaced by ``***``.

    Messages are made without secrets; this is the last line of defence against a client
    library's text, so it must not mangle words a short secret happens to be part of.

    >>> mask("bucket mybucket refused key s3cr3t/x", ["s3cr3t", "s"])
    'bucket mybucket refused key ***/x'
    """
    for secret in sorted(secrets, key=len, reverse=True):
        text = re.sub(rf"(?<![A-Za-z0-9+]){re.escape(secret)}(?![A-Za-z0-9+])", "***", text)
    return text


def classify(error: BaseException, config: S3Config, *, listing: bool = False) -> InputError:
    """The :class:`InputError` a failed request stands for, naming the URL."""
    text, url = f"{type(error).__name__} {error}", config.url
    reason = describe(error, config)
    if any(m in text for m in _NO_BUCKET) or (listing and isinstance(error, FileNotFoundError)):
        return BucketNotFoundError(
            f"{url}: the bucket {config.bucket!r} does not exist at {config.endpoint}")
    if isinstance(error, PermissionError) or any(m in text for m in _DENIED):
        code = next((m for m in _DENIED if m in text), "403")
        return StorageAccessError(
            f"{url}: access denied by {config.endpoint} ({code}); check the credentials "
            "(storage options, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and the bucket's permissions")
    if isinstance(error, ConnectionError | TimeoutError) or any(m in text for m in _UNREACHABLE) or (
        type(error).__name__ in ("EndpointConnectionError", "ConnectTimeoutError")
    ):
        return StorageUnreachableError(f"{url}: cannot reach the endpoint {config.endpoint} ({reason})")
    return ArrayNotFoundError(f"{url}: cannot be read ({reason})")
