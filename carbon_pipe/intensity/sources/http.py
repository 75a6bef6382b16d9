"""JSON over HTTP for the sources: explicit timeouts, bounded retries with backoff, 429 Retry-After honoured.

Every failure becomes one SourceError line naming the source and the endpoint (never a token: auth travels in
headers, URLs are shown without user info or query, and what a server says back is redacted, see secrets.py).
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Optional

import httpx

from ... import __version__
from ...errors import SourceError
from ...secrets import redact
from ..settings import HttpSourceParams

USER_AGENT = f"carbon-pipe/{__version__}"


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


def _api_message(response: httpx.Response) -> str:
    """The short reason an API put in its error body (UK: error.message; WattTime: message), if any."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        inner = body.get("error")
        message = body.get("message") or (inner.get("message") if isinstance(inner, dict) else inner)
        if isinstance(message, str):
            # Redacted before it is cut short or its whitespace folded: either could split a secret it echoes.
            return ": " + " ".join(redact(message).split())[:200]
    return ""


class JsonClient:
    """GET JSON from one source's base URL, as hard as its params allow and no harder."""

    def __init__(
        self,
        source: str,
        settings: HttpSourceParams,
        headers: Optional[dict[str, str]] = None,
        transport: Optional[httpx.BaseTransport] = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.source = source
        self.settings = settings
        self.sleep = sleep
        self.client = httpx.Client(
            base_url=settings.base_url + "/",
            timeout=settings.timeout,
            headers={"User-Agent": USER_AGENT, **(headers or {})},
            transport=transport,
            # Not followed: httpx drops only Authorization on a cross-host redirect, not our auth-token header.
            follow_redirects=False,
        )

    def endpoint(self, path: str) -> str:
        url = httpx.URL(self.settings.base_url + "/").join(path.lstrip("/"))
        return f"GET {url.scheme}://{url.host}{f':{url.port}' if url.port else ''}{url.path}"

    def get(self, path: str, params: Optional[dict[str, Any]] = None, **request: Any) -> Any:
        """The decoded JSON body. Retries timeouts, connection failures, 5xx and 429; not other 4xx or bad JSON."""
        where = f"{self.source}: {self.endpoint(path)}"
        attempts = self.settings.retries + 1
        for attempt in range(1, attempts + 1):
            wait = self.settings.backoff * 2 ** (attempt - 1)
            try:
                response = self.client.get(path.lstrip("/"), params=params, **request)
            except httpx.TimeoutException:
                problem = f"timed out after {self.settings.timeout:g} s"
            except httpx.ConnectError:
                problem = "cannot connect (refused or unreachable)"
            except httpx.HTTPError as exc:
                problem = f"request failed ({exc.__class__.__name__})"
            else:
                status = response.status_code
                if status == 429:
                    asked = retry_after_seconds(response.headers.get("Retry-After"))
                    if asked is not None and asked > self.settings.max_retry_after:
                        raise SourceError(
                            f"{where}: rate limited (429); Retry-After {asked:g} s exceeds max_retry_after "
                            f"{self.settings.max_retry_after:g} s"
                        )
                    wait = wait if asked is None else asked
                    problem = "rate limited (429)"
                elif status >= 500:
                    problem = f"HTTP {status}{_api_message(response)}"
                elif status >= 400:
                    raise HttpStatusError(f"{where}: HTTP {status}{_api_message(response)}", status)
                elif status >= 300:
                    raise HttpStatusError(
                        f"{where}: HTTP {status} redirect, not followed so credentials stay with base_url "
                        "(set base_url to the final address)",
                        status,
                    )
                else:
                    try:
                        return response.json()
                    except (ValueError, UnicodeDecodeError):
                        raise SourceError(f"{where}: invalid JSON in the response") from None
            if attempt < attempts:
                self.sleep(wait)
        raise SourceError(f"{where}: {problem} ({attempts} attempt{'s' if attempts > 1 else ''})")

    def close(self) -> None:
        self.client.close()


def shape_error(source: str, what: str) -> SourceError:
    return SourceError(f"{source}: unexpected response: {what}")


_KIND_NAMES = {dict: "an object", list: "a list", str: "a string", (int, float): "a number"}


def expect(value: Any, kind: type | tuple[type, ...], source: str, what: str) -> Any:
    """`value` if it is of `kind`; otherwise a SourceError naming what was expected (valid JSON, wrong shape)."""
    if isinstance(value, bool) or not isinstance(value, kind):
        found = "null" if value is None else type(value).__name__
        raise shape_error(source, f"{what} is {found}, expected {_KIND_NAMES.get(kind, kind)}")
    return value


def intensity_value(value: Any, source: str, what: str, scale: float = 1.0) -> float:
    """A gCO2/kWh figure (after `scale`): a finite number >= 0. Zero is a value, not 'missing'."""
    number = float(expect(value, (int, float), source, what)) * scale
    if not math.isfinite(number) or number < 0:
        raise shape_error(source, f"{what} is {value!r}, not a non-negative intensity")
    return number


def parse_time(text: Any, source: str, what: str) -> float:
    """An API timestamp (ISO-8601, Z or offset; UK's '2023-03-14T03:30Z' included) -> epoch seconds."""
    expect(text, str, source, what)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise shape_error(source, f"{what} {text!r} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()
