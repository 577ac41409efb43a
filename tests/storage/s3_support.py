"""S3 on loopback for blockdist's tests and benchmarks.

:class:`MotoS3` runs moto's S3 server in a thread on 127.0.0.1 (a free port chosen by the
OS), with dummy credentials; :class:`FaultProxy` is an HTTP proxy on 127.0.0.1 in front of
it that fails a share of the requests (503, a dropped connection, a response cut short),
can slow every request down, and counts the requests in flight. Nothing here listens beyond
127.0.0.1.
"""

from __future__ import annotations

import http.client
import itertools
import json
import logging
import socket
import struct
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

#: Dummy credentials: moto wants requests signed, by any key unless IAM auth is switched on.
ACCESS_KEY = "AKIABLOCKDISTTEST0001"
SECRET_KEY = "blockdist-dummy-secret-d0c3f9a7e5b1"
REGION = "us-east-1"


class MotoS3:
    """moto's S3 server in a thread on 127.0.0.1 (or on ``host``: a test's own private address,
    such as its network namespaces' bridge)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> MotoS3:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _post(self, path: str, data: bytes = b"") -> Any:
        request = urllib.request.Request(self.endpoint + path, data=data, method="POST",
                                         headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def reset(self) -> None:
        """Forget every bucket and IAM user, and switch IAM authentication off."""
        self.auth(False)
        self._post("/moto-api/reset")

    def auth(self, on: bool) -> None:
        """Switch moto's IAM authentication on (unknown keys and bad signatures get 403) or off."""
        self._post("/moto-api/reset-auth", b"0" if on else b"inf")

    def client(self, service: str = "s3") -> Any:
        return boto3_client(self.endpoint, service)

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def iam_user(self, name: str = "blockdist") -> tuple[str, str]:
        """An IAM user allowed everything; returns its (access key id, secret)."""
        iam = self.client("iam")
        iam.create_user(UserName=name)
        policy = {"Version": "2012-10-17",
                  "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName=name, PolicyName="all", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]


def boto3_client(endpoint: str, service: str = "s3") -> Any:
    """A boto3 client of ``service`` at ``endpoint``, with the dummy credentials."""
    import boto3

    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)


def storage_options(endpoint: str, **more: Any) -> dict[str, Any]:
    """blockdist storage options for the loopback server at ``endpoint``."""
    return {"endpoint_url": endpoint, "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY,
            "region": REGION, **more}


def environment(endpoint: str) -> dict[str, str]:
    """The AWS environment variables that point at the loopback server."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION, "AWS_ALLOW_HTTP": "true"}


# --------------------------------------------------------------------------- fault proxy

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
               "proxy-authorization", "te", "trailer", "trailers", "transfer-encoding", "upgrade"}

#: What :class:`FaultProxy` can do to a request instead of forwarding it faithfully.
FAULTS = ("503", "500", "reset", "truncate")


@dataclass
class ProxyStats:
    requests: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    methods: dict[str, int] = field(default_factory=dict)


class FaultProxy:
    """An HTTP/1.1 proxy on 127.0.0.1 that fails every ``every``-th request.

    The faults cycle through ``faults`` (see :data:`FAULTS`): ``"503"`` answers SlowDown,
    ``"500"`` InternalError, ``"reset"`` drops the connection without an answer (a TCP
    reset), ``"truncate"`` sends the headers and half the body, then resets. ``delay``
    holds each request that long before forwarding it, so concurrent requests overlap and
    :attr:`stats` ``.max_in_flight`` shows how many a client keeps in flight.
    """

    def __init__(self, upstream: str, *, every: int = 0, faults: Sequence[str] = ("503", "reset"),
                 delay: float = 0.0) -> None:
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}")
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.every, self.faults, self.delay = every, tuple(faults), delay
        self.stats = ProxyStats()
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._fault_cycle = itertools.cycle(self.faults)
        proxy = self

        class Handler(_ProxyHandler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"

    def configure(self, *, every: int | None = None, delay: float | None = None,
                  faults: Sequence[str] | None = None) -> None:
        with self._lock:
            if every is not None:
                self.every = every
            if delay is not None:
                self.delay = delay
            if faults is not None:
                self.faults = tuple(faults)
                self._fault_cycle = itertools.cycle(self.faults)
            self.stats = ProxyStats()
            self._counter = itertools.count(1)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _begin(self, method: str) -> str | None:
        with self._lock:
            number = next(self._counter)
            stats = self.stats
            stats.requests += 1
            stats.methods[method] = stats.methods.get(method, 0) + 1
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            if self.every and number % self.every == 0:
                fault = next(self._fault_cycle)
                if fault == "truncate" and method != "GET":
                    fault = "reset"
                stats.faults[fault] = stats.faults.get(fault, 0) + 1
                return fault
            return None

    def _end(self) -> None:
        with self._lock:
            self.stats.in_flight -= 1


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: FaultProxy
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is not None:
            return self.rfile.read(int(length))
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return b""

    def _reset(self) -> None:
        """Drop the connection with a TCP reset, answering nothing more."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        if body or self.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        for attempt in range(2):
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(*self.owner.upstream, timeout=60)
            try:
                self._upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = self._upstream.getresponse()
                data = response.read()
                return response.status, response.reason, response.getheaders(), data
            except (OSError, http.client.HTTPException):
                self._upstream.close()
                self._upstream = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _handle(self) -> None:
        body = self._read_body()
        fault = self.owner._begin(self.command)
        ended = False

        def end() -> None:  # counted out before the answer goes back, so a client's next
            nonlocal ended  # request never finds this one still counted
            if not ended:
                ended = True
                self.owner._end()

        try:
            if self.owner.delay:
                time.sleep(self.owner.delay)
            if fault == "reset":
                end()
                self._reset()
                return
            if fault in ("503", "500"):
                code, reason = (("SlowDown", "Slow Down") if fault == "503"
                                else ("InternalError", "Internal Error"))
                data = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                        f"<Message>injected by the test proxy</Message></Error>").encode()
                end()
                self.send_response_only(int(fault), reason)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                return
            status, reason, headers, data = self._forward(body)
            end()
            self.send_response_only(status, reason)
            for key, value in headers:
                if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            length = dict((k.lower(), v) for k, v in headers).get("content-length", str(len(data)))
            self.send_header("Content-Length", length if self.command == "HEAD" else str(len(data)))
            self.end_headers()
            if fault == "truncate" and len(data) > 1:
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self._reset()
                return
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            end()

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _handle
