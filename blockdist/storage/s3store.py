"""The zarr store of an array on S3-compatible object storage (used by :mod:`.refs` and :mod:`.arrays`).

:class:`S3Store` talks to the bucket through zarr's ``ObjectStore`` (obstore, the default:
faster in ``benchmarks/s3_read.py``) or ``FsspecStore`` (s3fs; ``backend=s3fs`` or
``BLOCKDIST_S3_BACKEND=s3fs``), lets the client library retry transient failures (5xx,
dropped connections, timeouts) with exponential backoff, keeps at most ``max_requests``
requests in flight (default: zarr's ``async.concurrency``), pickles as its
:class:`~.s3config.S3Config` (rebuilding its client in the worker process) and reports
failures naming the URL, never a credential.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

import zarr
from zarr.abc.store import Store
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import WrapperStore

from ..errors import StorageIOError
from .s3config import CREDENTIALS, S3Config, classify, describe, make_config

# --------------------------------------------------------------------------- backends

_backends: dict[S3Config, Store] = {}
_backends_lock = threading.Lock()


def _build(config: S3Config) -> Store:
    if config.backend == "s3fs":
        import s3fs
        from zarr.storage import FsspecStore

        fs = s3fs.S3FileSystem(
            key=config.access_key_id, secret=config.secret_access_key, token=config.session_token,
            anon=config.anon, endpoint_url=config.endpoint_url,
            client_kwargs={"region_name": config.region} if config.region else None,
            config_kwargs={"connect_timeout": config.connect_timeout, "read_timeout": config.timeout,
                           "retries": {"max_attempts": config.retries + 1, "mode": "standard"}},
            # One GET per chunk: with max_concurrency > 1, s3fs sends a HEAD before every GET
            # and splits large objects into parallel range requests, past zarr's bound.
            max_concurrency=1, use_listings_cache=False, asynchronous=True, skip_instance_cache=True,
        )
        fs.retries = max(1, config.retries)  # s3fs's own retries of dropped connections
        return FsspecStore(fs, path=f"{config.bucket}/{config.prefix}".rstrip("/"))
    from obstore.store import S3Store as ObstoreS3
    from zarr.storage import ObjectStore

    settings: dict[str, Any] = {"skip_signature": config.anon}
    for name in ("endpoint_url", "region", *CREDENTIALS):
        value = getattr(config, name)
        if value:
            settings["endpoint" if name == "endpoint_url" else name] = value
    client: Any = {"allow_http": config.allow_http, "timeout": timedelta(seconds=config.timeout),
              "connect_timeout": timedelta(seconds=config.connect_timeout)}
    retry: Any = {"max_retries": config.retries, "retry_timeout": timedelta(minutes=3),
             "backoff": {"init_backoff": timedelta(milliseconds=100),
                         "max_backoff": timedelta(seconds=15), "base": 2}}
    return ObjectStore(ObstoreS3(config.bucket, prefix=config.prefix or None, client_options=client,
                                 retry_config=retry, **settings))


def _backend(config: S3Config) -> Store:
    """One client per configuration and process, shared by every store of it."""
    with _backends_lock:
        store = _backends.get(config)
        if store is None:
            store = _backends[config] = _build(config)
        return store


# --------------------------------------------------------------------------- the store


#: Requests that may be repeated without changing anything.
_IDEMPOTENT = ("reading", "looking up")
#: What a response cut short looks like in obstore's and aiohttp's errors.
_BROKEN_OFF = ("body error", "IncompleteRead", "ClientPayloadError", "ContentLengthError",
               "Response payload is not completed", "ServerDisconnected", "Connection reset")


def _broken_off(error: BaseException) -> bool:
    text = f"{type(error).__name__} {error}"
    return any(marker in text for marker in _BROKEN_OFF)


class S3Store(WrapperStore[Store]):
    """The zarr store of one array under ``s3://bucket/prefix``.

    Delegates to the backend's zarr store, bounds the requests in flight, and turns errors
    into :class:`StorageIOError` naming the URL. Pickles as its :class:`S3Config`.
    """

    def __init__(self, config: S3Config, store: Store | None = None) -> None:
        super().__init__(store if store is not None else _backend(config))
        self.config = config
        self._limits: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}

    def _with_store(self, store: Store) -> S3Store:
        return type(self)(self.config, store)

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "read_only": self.read_only}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"], _backend(state["config"]).with_read_only(state["read_only"]))  # type: ignore[misc]

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, S3Store) and self.config.location == other.config.location
                and self.read_only == other.read_only)

    def __hash__(self) -> int:
        return hash(self.config.location)

    def __str__(self) -> str:
        return self.config.url

    def __repr__(self) -> str:
        return (f"S3Store({self.config.url!r}, endpoint={self.config.endpoint!r}, "
                f"backend={self.config.backend!r}, read_only={self.read_only})")

    def probing(self) -> S3Store:
        """A twin that gives up fast: for the checks before a job, not for its tasks."""
        config = self.config
        return S3Store(replace(config, retries=min(config.retries, 2), timeout=min(config.timeout, 20),
                               connect_timeout=min(config.connect_timeout, 3)))

    def _limit(self) -> asyncio.Semaphore | None:
        limit = self.config.max_requests or zarr.config.get("async.concurrency")
        if not limit:
            return None
        loop = asyncio.get_running_loop()
        semaphore = self._limits.get(loop)
        if semaphore is None:
            semaphore = self._limits[loop] = asyncio.Semaphore(limit)
        return semaphore

    def _fail(self, what: str, key: str, error: BaseException) -> StorageIOError:
        where = f"{self.config.url}/{key}".rstrip("/")
        return StorageIOError(f"{what} {where} failed: {describe(error, self.config)}")

    async def _request(self, what: str, key: str, call: Any) -> Any:
        """One request, within the bound on requests in flight. A read whose response broke off
        mid-body (which the client libraries do not retry) is tried again, up to ``retries``."""
        missing = self.config.missing_credentials
        if missing is not None:
            raise missing
        semaphore = self._limit()
        attempt = 0
        while True:
            try:
                if semaphore is None:
                    return await call()
                async with semaphore:
                    return await call()
            except (asyncio.CancelledError, NotImplementedError, ValueError, TypeError):
                raise
            except Exception as error:
                if what in _IDEMPOTENT and attempt < self.config.retries and _broken_off(error):
                    attempt += 1
                    await asyncio.sleep(min(0.05 * 2**attempt, 2.0))
                    continue
                raise self._fail(what, key, error) from None

    async def get(self, key, prototype, byte_range=None):  # type: ignore[no-untyped-def]
        return await self._request("reading", key, lambda: self._store.get(key, prototype, byte_range))

    async def get_partial_values(self, prototype, key_ranges):  # type: ignore[no-untyped-def]
        return list(await asyncio.gather(*(self.get(k, prototype, r) for k, r in key_ranges)))

    async def exists(self, key: str) -> bool:
        return await self._request("looking up", key, lambda: self._store.exists(key))  # type: ignore[no-any-return]

    async def set(self, key, value):  # type: ignore[no-untyped-def]
        self._check_writable()
        await self._request("writing", key, lambda: self._store.set(key, value))

    async def set_if_not_exists(self, key, value):  # type: ignore[no-untyped-def]
        self._check_writable()
        await self._request("writing", key, lambda: self._store.set_if_not_exists(key, value))

    async def delete(self, key: str) -> None:
        await self._request("deleting", key, lambda: self._store.delete(key))

    async def delete_dir(self, prefix: str) -> None:
        await self._request("deleting", prefix, lambda: self._store.delete_dir(prefix))

    async def _listing(self, items: AsyncIterator[str], prefix: str) -> AsyncIterator[str]:
        try:
            async for item in items:
                yield item
        except Exception as error:
            raise self._fail("listing", prefix, error) from None

    async def _objects(self) -> list[tuple[str, int, str]]:
        inner: Any = self._store
        if hasattr(inner, "fs"):  # s3fs, through zarr's FsspecStore
            root = inner.path.rstrip("/") + "/"
            found = await inner.fs._find(inner.path, detail=True)
            items = [(key.removeprefix(root), info.get("size", 0), info.get("ETag") or info.get("LastModified"))
                     for key, info in found.items()]
        else:  # obstore, through zarr's ObjectStore; paths are relative to the store's prefix
            items = []
            async for batch in inner.store.list(chunk_size=1000):
                items += [(meta["path"], meta["size"], meta.get("e_tag") or meta["last_modified"]) for meta in batch]
        return sorted((str(key), int(size), str(tag).strip('"')) for key, size, tag in items)

    def objects(self) -> list[tuple[str, int, str]]:
        """Every object under the array's prefix as ``(key, size, ETag)``: what changes when data does.

        A listing whose response broke off is asked again, up to ``retries`` times."""
        attempt = 0
        while True:
            try:
                return sync(self._objects())
            except Exception as error:
                transient = _broken_off(error) or "response body" in str(error)
                if transient and attempt < self.config.retries:
                    attempt += 1
                    time.sleep(min(0.05 * 2**attempt, 2.0))
                    continue
                raise classify(error, self.config, listing=True) from None

    def list(self) -> AsyncIterator[str]:
        return self._listing(self._store.list(), "")

    def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        return self._listing(self._store.list_prefix(prefix), prefix)

    def list_dir(self, prefix: str) -> AsyncIterator[str]:
        return self._listing(self._store.list_dir(prefix), prefix)


def open_url(url: str, options: Mapping[str, Any] | None) -> S3Store:
    return S3Store(make_config(url, options))


def adopt(store: Store) -> S3Store | None:
    """An :class:`S3Store` for a plain zarr ``ObjectStore``/``FsspecStore`` on S3, if it is one."""
    inner: Any = getattr(store, "store", None)
    if type(inner).__name__ == "S3Store" and type(inner).__module__.startswith("obstore"):
        c = dict(inner.config)
        options = {k: c[k] for k in ("endpoint", "region", *CREDENTIALS) if c.get(k)}
        options["allow_http"] = bool((inner.client_options or {}).get("allow_http", False))
        url = f"s3://{c['bucket']}/{inner.prefix or ''}"
    elif type(getattr(store, "fs", None)).__name__ == "S3FileSystem":
        fs = store.fs  # type: ignore[attr-defined]
        options = {"key": fs.key, "secret": fs.secret, "token": fs.token, "endpoint_url": fs.endpoint_url,
                   "region": (fs.client_kwargs or {}).get("region_name"), "backend": "s3fs"}
        url = f"s3://{store.path}"  # type: ignore[attr-defined]
    else:
        return None
    config = make_config(url, options, environ={})
    return S3Store(config).with_read_only(store.read_only)


# --------------------------------------------------------------------------- checks before a job


async def _first(items: AsyncIterator[str]) -> str | None:
    async for item in items:
        return item
    return None


async def _asked(call: Any, config: S3Config, *, listing: bool = False) -> Any:
    """One request of the checks before a job, asked again (up to ``retries``) where its answer broke off."""
    attempt = 0
    while True:
        try:
            return await call()
        except Exception as error:
            if attempt < config.retries and (_broken_off(error) or "response body" in str(error)):
                attempt += 1
                await asyncio.sleep(min(0.05 * 2**attempt, 2.0))
                continue
            raise classify(error, config, listing=listing) from None


async def _look(store: Store, config: S3Config) -> tuple[str, bytes | None]:
    prototype = default_buffer_prototype()
    meta = await _asked(lambda: store.get("zarr.json", prototype), config)
    if meta is not None:
        return "zarr", meta.to_bytes()
    anything = await _asked(lambda: _first(store.list_prefix("")), config, listing=True)
    if anything is None:
        return "missing", None
    # something is there: a Zarr v2 array keeps its metadata in .zarray
    meta = await _asked(lambda: store.get(".zarray", prototype), config)
    return ("zarr", meta.to_bytes()) if meta is not None else ("other", None)


def look(store: S3Store) -> tuple[str, bytes | None]:
    """What is at the store's prefix, asked quickly: ``("zarr", zarr.json or .zarray)``, ``("other",
    None)`` or ``("missing", None)``. A missing bucket, refused credentials or an endpoint
    that does not answer raise an :class:`~blockdist.errors.InputError` naming the URL."""
    if store.config.missing_credentials is not None:
        raise store.config.missing_credentials
    probe = store.probing()
    return sync(_look(probe._store, probe.config))


__all__ = ["S3Store", "adopt", "look", "open_url"]
