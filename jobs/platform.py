"""Client of the monitoring platform (OGC SensorThings API 1.1, read side; docs/platform.md).

It survives what real platforms do: timeouts, resets, 5xx and 429 (with `Retry-After`) are retried
a bounded number of times with exponential backoff and jitter; a truncated or invalid JSON body is
retried like a failed request; `@iot.nextLink` is followed exactly as given (absolute or relative)
until it is absent, and a link already followed stops the walk (a loop) instead of spinning.
"""

import asyncio
import email.utils
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated
from urllib.parse import parse_qsl, quote, urljoin, urlsplit

import httpx
import msgspec
import orjson

API = "v1.1"
THINGS_EXPAND = "Datastreams($expand=ObservedProperty)"
FEED_ORDER = "resultTime,@iot.id"
FEED_EXPAND = "Datastream($select=@iot.id)"
_QUERY_SAFE = "$@,:()=;/'"


class PlatformError(RuntimeError):
    """The platform could not be read, even after retries."""


class NextLinkLoop(PlatformError):
    """The platform sent a nextLink that was already followed: the walk stops there."""

    def __init__(self, url: str):
        super().__init__(f"nextLink loop: {url} was already followed")
        self.url = url


class InvalidBody(ValueError):
    pass


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # per request, the first included
    backoff_s: float = 0.5  # the first retry waits about this long, then doubling …
    backoff_max_s: float = 30.0  # … up to this
    retry_after_max_s: float = 300.0  # a longer Retry-After fails the request (next pull resumes)

    def backoff(self, retry: int) -> float:
        """Exponential with jitter: between half and all of base·2^(retry-1), capped."""
        ceiling = min(self.backoff_max_s, self.backoff_s * 2 ** (retry - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


@dataclass
class Page:
    url: str  # the absolute URL this page was read from
    rows: list
    next_url: str | None  # absolute; None at the end (or where a loop was cut)
    loop: str | None = None  # the repeated link, when the walk stopped on a loop


@dataclass
class RequestStats:
    requests: int = 0
    retries: int = 0
    by_cause: dict[str, int] = field(default_factory=dict)

    def retried(self, cause: str) -> None:
        self.retries += 1
        self.by_cause[cause] = self.by_cause.get(cause, 0) + 1


def utc_text(t: datetime) -> str:
    """A time as the platform wants it: UTC with `Z` (fractional seconds only when present)."""
    t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if t.microsecond else "%Y-%m-%dT%H:%M:%SZ")


def link_key(url: str) -> tuple:
    """What makes two links the same request, however they are spelled or encoded."""
    parts = urlsplit(url)
    query = tuple(sorted(parse_qsl(parts.query, keep_blank_values=True)))
    return (parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), query)


def parse_json(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:  # bare NaN / Infinity, or integers beyond 64 bits, which orjson refuses
        return json.loads(body, parse_int=_json_int)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidBody(f"invalid JSON ({len(body)} bytes): {exc}") from None


def _json_int(text: str) -> int | Decimal:
    """An integer of any length: past Python's limit on digits it is kept as a Decimal (a row
    with such a value is then quarantined, not the page refused)."""
    try:
        return int(text)
    except ValueError:
        return Decimal(text)


MIN_ID, MAX_ID = -(2**63), 2**63 - 1  # an @iot.id is stored as a bigint
_Id = Annotated[int, msgspec.Meta(ge=MIN_ID, le=MAX_ID)]


class _FeedDatastream(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    id: int | str = msgspec.field(name="@iot.id")
    self_link: str = msgspec.field(name="@iot.selfLink", default=msgspec.UNSET)


class FeedRow(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A well-formed row of the Observations feed, with nothing but SensorThings' own fields —
    so `as_json_row` gives back exactly what was received (field names are the platform's).
    Several times cheaper than a dict to build, read and free; not tracked by the cyclic GC."""

    id: _Id = msgspec.field(name="@iot.id")
    phenomenonTime: str
    resultTime: str
    result: float | int | str | None
    Datastream: _FeedDatastream
    self_link: str = msgspec.field(name="@iot.selfLink", default=msgspec.UNSET)
    datastream_link: str = msgspec.field(
        name="Datastream@iot.navigationLink", default=msgspec.UNSET
    )
    feature_link: str = msgspec.field(
        name="FeatureOfInterest@iot.navigationLink", default=msgspec.UNSET
    )
    validTime: str = msgspec.field(default=msgspec.UNSET)
    resultQuality: object = msgspec.field(default=msgspec.UNSET)
    parameters: dict = msgspec.field(default=msgspec.UNSET)


class _FeedPage(msgspec.Struct, gc=False):
    value: list[FeedRow]
    next_link: str | None = msgspec.field(name="@iot.nextLink", default=None)


_FEED_PAGE = msgspec.json.Decoder(_FeedPage)


def parse_feed_page(body: bytes) -> dict:
    """A page of the Observations feed whose rows are FeedRows where they fit. A page with any
    other row (a missing field, a bare NaN, an id as text, an unknown field…) is parsed like any
    collection, and only its rows that fit become FeedRows; the rest stay as parsed, for the
    ingest's row-by-row checks."""
    try:
        page = _FEED_PAGE.decode(body)
    except msgspec.DecodeError:  # ValidationError included
        doc = parse_collection(body)
        doc["value"] = [_feed_row(row) for row in doc["value"]]
        return doc
    return {"value": page.value, "@iot.nextLink": page.next_link}


def _feed_row(row: object) -> object:
    if isinstance(row, dict) and type(row.get("result")) is Decimal:
        return row  # kept as sent: msgspec would make the integer an infinite float
    try:
        return msgspec.convert(row, FeedRow)
    except msgspec.ValidationError:
        return row


def as_json_row(row: object) -> object:
    """A feed row as JSON values (dicts), whichever way it was parsed."""
    return msgspec.to_builtins(row) if type(row) is FeedRow else row


def parse_collection(body: bytes) -> dict:
    doc = parse_json(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("value"), list):
        raise InvalidBody("not a SensorThings collection (no 'value' list)")
    link = doc.get("@iot.nextLink")
    if link is not None and not isinstance(link, str):
        raise InvalidBody("@iot.nextLink is not a string")
    return doc


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())


class PlatformClient:
    """`async with PlatformClient(base_url) as client:` — base_url is the service root without /v1.1."""

    def __init__(
        self,
        base_url: str,
        *,
        retry: RetryPolicy = RetryPolicy(),
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.root = base_url.rstrip("/") + f"/{API}/"
        self.retry = retry
        self.stats = RequestStats()
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            timeout=timeout,
            transport=transport,
            headers={"accept": "application/json"},
            follow_redirects=True,
        )

    async def __aenter__(self) -> "PlatformClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self._http.aclose()

    # ---- URLs ----------------------------------------------------------------------------
    def _url(self, resource: str, options: list[tuple[str, str]]) -> str:
        query = "&".join(f"{k}={quote(v, safe=_QUERY_SAFE)}" for k, v in options)
        return f"{self.root}{resource}?{query}"

    def things_url(self, top: int = 1000) -> str:
        return self._url("Things", [("$expand", THINGS_EXPAND), ("$top", str(top))])

    def observations_url(self, since: datetime | None, top: int) -> str:
        """The global feed in receipt order, from `since` (inclusive) on."""
        options = [] if since is None else [("$filter", f"resultTime ge {utc_text(since)}")]
        options += [("$orderby", FEED_ORDER), ("$top", str(top)), ("$expand", FEED_EXPAND)]
        return self._url("Observations", options)

    # ---- requests ------------------------------------------------------------------------
    async def get_collection(
        self, url: str, parse: Callable[[bytes], dict] = parse_collection
    ) -> dict:
        """GET one page, retrying what is worth retrying; PlatformError when it never works."""
        policy = self.retry
        for attempt in range(1, policy.attempts + 1):
            self.stats.requests += 1
            wait: float | None = None
            try:
                response = await self._http.get(url)
            except httpx.TransportError as exc:  # timeouts, resets, refused, cut bodies
                cause, problem = type(exc).__name__, f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status == 200:
                    try:
                        return parse(response.content)
                    except InvalidBody as exc:
                        cause, problem = "invalid_json", str(exc)
                elif status in RETRY_STATUS:
                    cause, problem = f"http_{status}", f"HTTP {status}"
                    wait = _retry_after(response)
                    if wait is not None and wait > policy.retry_after_max_s:
                        raise PlatformError(
                            f"{url}: HTTP {status} with Retry-After {wait:.0f} s (over the "
                            f"{policy.retry_after_max_s:.0f} s limit)"
                        )
                else:
                    raise PlatformError(f"{url}: HTTP {status}: {response.text[:200]}")
            if attempt == policy.attempts:
                raise PlatformError(f"{url}: {problem} (gave up after {attempt} attempts)")
            self.stats.retried(cause)
            await self._sleep(wait if wait is not None else policy.backoff(attempt))
        raise AssertionError("unreachable")

    async def walk(
        self,
        url: str,
        prefetch: bool = True,
        parse: Callable[[bytes], dict] = parse_collection,
    ) -> AsyncIterator[Page]:
        """Pages from `url` on, following @iot.nextLink until it is absent.

        With `prefetch`, the next page is fetched while the caller works on the current one. A
        nextLink that was already followed ends the walk: that page comes with `loop` set.
        """
        followed = {link_key(url)}
        pending = asyncio.ensure_future(self.get_collection(url, parse))
        try:
            while pending is not None:
                doc = await pending
                pending = None
                link = doc.get("@iot.nextLink")
                next_url = urljoin(url, link) if link else None
                loop = None
                if next_url is not None:
                    key = link_key(next_url)
                    if key in followed:
                        loop, next_url = next_url, None
                    else:
                        followed.add(key)
                        if prefetch:
                            pending = asyncio.ensure_future(self.get_collection(next_url, parse))
                            await asyncio.sleep(0)  # send the request before the caller works
                yield Page(url, doc["value"], next_url, loop)
                if next_url is None:
                    return
                if pending is None:
                    pending = asyncio.ensure_future(self.get_collection(next_url, parse))
                url = next_url
        finally:
            if pending is not None:
                if not pending.done():
                    pending.cancel()
                elif not pending.cancelled():
                    pending.exception()  # retrieved: a prefetch nobody needs any more

    async def things(self, top: int = 1000) -> list[dict]:
        """Every Thing with its Datastreams and their ObservedProperty.

        Raises NextLinkLoop rather than return a partial registry: datastreams missing from it
        would make good feed rows look unknown.
        """
        things: list[dict] = []
        async for page in self.walk(self.things_url(top), prefetch=False):
            if page.loop:
                raise NextLinkLoop(page.loop)
            for thing in page.rows:
                if isinstance(thing, dict):
                    await self._complete_datastreams(thing, page.url)
                things.append(thing)
        return things

    async def _complete_datastreams(self, thing: dict, base: str) -> None:
        """An expanded collection may itself be paged (`Datastreams@iot.nextLink`)."""
        link = thing.get("Datastreams@iot.nextLink")
        streams = thing.get("Datastreams")
        if not link or not isinstance(streams, list):
            return
        async for page in self.walk(urljoin(base, link), prefetch=False):
            if page.loop:
                raise NextLinkLoop(page.loop)
            streams.extend(page.rows)
        thing.pop("Datastreams@iot.nextLink", None)
