"""JSON over HTTP for the sources: a deadline per request and per source, a size cap, bounded retries with
backoff, 429 Retry-After honoured.

Every failure becomes one SourceError line naming the source and the endpoint (never a token: auth travels in
headers, URLs are shown without user info or query, and what a server says back is redacted, see secrets.py).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import socket
import ssl
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Iterator, Optional

import httpx

from ... import __version__
from ...config.carbon import HttpSourceParams
from ...errors import FetchCutShort, SourceError
from ...secrets import redact
from ..series import MAX_INTENSITY

USER_AGENT = f"carbon-pipe/{__version__}"
NO_ANSWER = "no complete answer"
READ_SIZE = 64 * 1024
ZLIB_WINDOW = {"gzip": 31, "deflate": 47}  # the encodings asked for; zlib's wbits: a gzip stream, gzip or zlib


class HttpStatusError(SourceError):
    """The server answered with an error status that retrying will not fix."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def retry_after_seconds(value: Optional[str], now: Callable[[], float] = time.time) -> Optional[float]:
    """A Retry-After header (delay-seconds or an HTTP date) -> seconds to wait; None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, moment.timestamp() - now())


def _api_message(content: bytes) -> str:
    """The short reason an API put in its error body (UK: error.message; WattTime: message), if any."""
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        return ""
    if isinstance(body, dict):
        inner = body.get("error")
        message = body.get("message") or (inner.get("message") if isinstance(inner, dict) else inner)
        if isinstance(message, str):
            # Redacted before it is cut short or its whitespace folded: either could split a secret it echoes.
            return ": " + " ".join(redact(message).split())[:200]
    return ""


@dataclass(frozen=True)
class FetchDeadline:
    """A moment (time.monotonic()) every request of a fetch must end by, whatever source_timeout leaves, and what it
    is, for the messages: a re-plan's fetch may not run past the job's latest start."""

    monotonic: float
    what: str

    @classmethod
    def after(cls, seconds: float, what: str) -> "FetchDeadline":
        return cls(time.monotonic() + seconds, what)


class _Retry(Exception):
    """A failure another attempt may fix, and how long the server asked us to wait first (None: it did not say)."""

    def __init__(self, problem: str, wait: Optional[float] = None) -> None:
        super().__init__(problem)
        self.problem, self.wait = problem, wait


class _Deadline:
    """Ends one request at its deadline by shutting its socket down. httpx's timeouts bound each read, not the
    whole answer: a server sending a byte a second would never time out. The socket comes from httpcore's trace
    hook, as each new connection (and its TLS layer) is made."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._socket: Optional[socket.socket] = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            with self._lock:
                self._socket = info["return_value"].get_extra_info("socket")
                if self.expired:
                    self._shut()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            self._shut()

    def _shut(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):  # already closed: nothing left to end
                self._socket.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> "_Deadline":
        self._timer.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._timer.cancel()


def _inflated(response: httpx.Response) -> Iterator[bytes]:
    """The body as it streams in, inflated at most READ_SIZE bytes at a time (httpx inflates each network read
    whole, and 64 kB of a gzip bomb is 64 MB)."""
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding == "identity":
        yield from response.iter_raw()
        return
    if encoding not in ZLIB_WINDOW:
        raise ValueError(f"unsupported Content-Encoding {encoding!r}")
    inflater = zlib.decompressobj(ZLIB_WINDOW[encoding])
    for raw in response.iter_raw():
        out = inflater.decompress(raw, READ_SIZE)
        while out:
            yield out
            out = inflater.decompress(inflater.unconsumed_tail, READ_SIZE)
    yield inflater.flush()


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The certificate authorities httpx trusts (its CA bundle, or SSL_CERT_FILE / SSL_CERT_DIR), loaded once per
    process: httpx loads them again for every client, tens of milliseconds each, and a fetch makes one client per
    source. One context is safe to share between clients."""
    return httpx.create_ssl_context()


class JsonClient:
    """GET JSON from one source's base URL, as hard as its params allow and no harder."""

    def __init__(
        self,
        source: str,
        settings: HttpSourceParams,
        headers: Optional[dict[str, str]] = None,
        sleep: Callable[[float], None] = time.sleep,
        until: Optional[FetchDeadline] = None,
    ) -> None:
        self.source = source
        self.settings = settings
        self.sleep = sleep
        self.until = until
        self.source_deadline: Optional[float] = None  # set by the first request: source_timeout counts from there
        self.client = httpx.Client(
            base_url=settings.base_url + "/",
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": ", ".join(ZLIB_WINDOW), **(headers or {})},
            # Not followed: httpx drops only Authorization on a cross-host redirect, not our auth-token header.
            follow_redirects=False,
            # A fresh connection per request, so each request's deadline sees its socket (a handful per fetch).
            limits=httpx.Limits(max_keepalive_connections=0),
            verify=tls_context(),
        )

    def endpoint(self, path: str) -> str:
        url = httpx.URL(self.settings.base_url + "/").join(path.lstrip("/"))
        return f"GET {url.scheme}://{url.host}{f':{url.port}' if url.port else ''}{url.path}"

    def get(self, path: str, params: Optional[dict[str, Any]] = None, **request: Any) -> Any:
        """The decoded JSON body. Retries timeouts, connection failures, 5xx and 429; not other 4xx, bad JSON or an
        answer over max_response_mb. Each request ends within `timeout`, all of this source's within
        `source_timeout` or by `until`, whichever comes first (waits between retries included): a wait that would
        pass it is not waited."""
        where = f"{self.source}: {self.endpoint(path)}"
        if self.source_deadline is None:
            own = time.monotonic() + self.settings.source_timeout
            self.source_deadline = own if self.until is None else min(own, self.until.monotonic)
        cut = self.until is not None and self.source_deadline == self.until.monotonic  # `until` comes first
        budget = self.until.what if cut else f"source_timeout {self.settings.source_timeout:g} s"
        spent = FetchCutShort if cut else SourceError  # what running out of the budget raises
        attempts = self.settings.retries + 1
        for attempt in range(1, attempts + 1):
            left = self.source_deadline - time.monotonic()
            if left <= 0:
                raise spent(f"{where}: not tried, {budget} spent on the requests before it")
            try:
                return self._attempt(where, path, params, request, min(left, self.settings.timeout))
            except _Retry as retry:
                problem, wait = retry.problem, retry.wait
            if problem == NO_ANSWER:
                if left <= self.settings.timeout:  # the source's time, not the request's, ran out
                    raise spent(f"{where}: {NO_ANSWER} within {budget} ({_attempts(attempt)})")
                problem = f"{NO_ANSWER} within {self.settings.timeout:g} s"
            wait = self.settings.backoff * 2 ** (attempt - 1) if wait is None else wait
            if attempt < attempts:
                if time.monotonic() + wait >= self.source_deadline:
                    raise spent(
                        f"{where}: {problem}; waiting {wait:g} s would pass {budget} ({_attempts(attempt)})"
                    )
                self.sleep(wait)
        raise SourceError(f"{where}: {problem} ({_attempts(attempts)})")

    def _attempt(self, where: str, path: str, params: Any, request: dict[str, Any], limit: float) -> Any:
        """One request within `limit` seconds -> the JSON body. Raises _Retry for what another attempt may fix,
        SourceError for the rest."""
        with _Deadline(limit) as deadline:
            try:
                with self.client.stream(
                    "GET",
                    path.lstrip("/"),
                    params=params,
                    timeout=limit,
                    extensions={"trace": deadline.trace},
                    **request,
                ) as response:
                    body = self._body(response, where, deadline)
            except httpx.TimeoutException:
                raise _Retry(NO_ANSWER) from None
            except httpx.ConnectError:
                raise _Retry("cannot connect (refused or unreachable)") from None
            except httpx.HTTPError as exc:  # the deadline shut the socket mid-answer, or the server broke off
                raise _Retry(NO_ANSWER if deadline.expired else f"request failed ({exc.__class__.__name__})") from None
        status = response.status_code
        if status == 429:
            asked = retry_after_seconds(response.headers.get("Retry-After"))
            if asked is not None and asked > self.settings.max_retry_after:
                raise SourceError(
                    f"{where}: rate limited (429); Retry-After {asked:g} s exceeds max_retry_after "
                    f"{self.settings.max_retry_after:g} s"
                )
            raise _Retry("rate limited (429)", asked)
        if status >= 500:
            raise _Retry(f"HTTP {status}{_api_message(body)}")
        if status >= 400:
            raise HttpStatusError(f"{where}: HTTP {status}{_api_message(body)}", status)
        if status >= 300:
            raise HttpStatusError(
                f"{where}: HTTP {status} redirect, not followed so credentials stay with base_url "
                "(set base_url to the final address)",
                status,
            )
        try:
            return json.loads(body)
        except RecursionError:
            raise SourceError(f"{where}: invalid JSON in the response (nested too deeply)") from None
        except ValueError:  # not JSON, not UTF-8, or a number with more digits than Python converts
            raise SourceError(f"{where}: invalid JSON in the response") from None

    def _body(self, response: httpx.Response, where: str, deadline: _Deadline) -> bytes:
        """The decoded body, refused once it passes max_response_mb; cut when the request's deadline passes."""
        cap, size, chunks = self.settings.max_response_mb * 1e6, 0, []
        try:
            for chunk in _inflated(response):
                size += len(chunk)
                if size > cap:
                    raise SourceError(
                        f"{where}: response larger than {self.settings.max_response_mb:g} MB (max_response_mb)"
                    )
                if deadline.expired:  # a transport without a socket to shut (a proxy's)
                    raise httpx.ReadTimeout("the request's deadline passed", request=response.request)
                chunks.append(chunk)
        except (ValueError, zlib.error) as exc:
            raise SourceError(f"{where}: cannot decode the response ({exc})") from None
        return b"".join(chunks)

    def close(self) -> None:
        self.client.close()


def _attempts(count: int) -> str:
    return f"{count} attempt{'s' if count > 1 else ''}"


def shape_error(source: str, what: str) -> SourceError:
    return SourceError(f"{source}: unexpected response: {what}")


_KIND_NAMES = {dict: "an object", list: "a list", str: "a string", (int, float): "a number"}


def expect(value: Any, kind: type | tuple[type, ...], source: str, what: str) -> Any:
    """`value` if it is of `kind`; otherwise a SourceError naming what was expected (valid JSON, wrong shape)."""
    if isinstance(value, bool) or not isinstance(value, kind):
        found = "null" if value is None else type(value).__name__
        raise shape_error(source, f"{what} is {found}, expected {_KIND_NAMES.get(kind, kind)}")
    return value


def as_number(value: Any) -> Optional[float]:
    """`value` as a finite float; None for text, booleans, NaN, infinities and integers too large for a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # JSON integers have no size limit: 10**400 is valid JSON
        return None
    return number if math.isfinite(number) else None


def shown(value: Any) -> str:
    """A payload value for a message, cut short: an integer can have hundreds of digits, a string any length."""
    text = repr(value)
    return text if len(text) <= 20 else text[:16] + "..."


def intensity_value(value: Any, source: str, what: str, scale: float = 1.0) -> float:
    """A gCO2/kWh figure (after `scale`) from 0 to MAX_INTENSITY. Zero is a value, not 'missing'."""
    number = as_number(expect(value, (int, float), source, what))
    if number is None or not 0 <= number * scale <= MAX_INTENSITY:
        raise shape_error(source, f"{what} is {shown(value)}, not an intensity (0 to {MAX_INTENSITY:g} g/kWh)")
    return number * scale


def parse_time(text: Any, source: str, what: str) -> float:
    """An API timestamp (ISO-8601, Z or offset; UK's '2023-03-14T03:30Z' included) -> epoch seconds."""
    expect(text, str, source, what)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise shape_error(source, f"{what} {shown(text)} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()
