"""Just enough OData query parsing for the two requests a SensorThings client makes here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, quote


class ODataError(Exception):
    def __init__(self, message: str, target: str | None = None, status: int = 400):
        super().__init__(message)
        self.message, self.target, self.status = message, target, status

    def body(self) -> dict:
        code = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed"}.get(
            self.status, "Error"
        )
        err: dict = {"code": code, "message": self.message}
        if self.target:
            err["target"] = self.target
        return {"error": err}


@dataclass
class Query:
    top: int
    skip: int = 0
    filter_op: str | None = None  # "ge" | "gt"
    filter_time: float | None = None  # epoch seconds
    filter_text: str | None = None  # as given, for nextLink
    expand: str | None = None
    count: bool = False

    def next_query(self, skip: int, orderby: str | None) -> str:
        """Query string of the next page (same filter, order, size, expansion)."""
        opts = []
        if self.filter_text is not None:
            opts.append(("$filter", self.filter_text))
        if orderby:
            opts.append(("$orderby", orderby))
        opts.append(("$top", str(self.top)))
        opts.append(("$skip", str(skip)))
        if self.expand:
            opts.append(("$expand", self.expand))
        return "&".join(f"{k}={quote(v, safe=_SAFE)}" for k, v in opts)


_SAFE = "@,:()$=;/'"
_FILTER = re.compile(r"^\s*resultTime\s+(ge|gt)\s+(.+?)\s*$")
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$", re.IGNORECASE)
_ORDER_TERM = re.compile(r"^\s*(resultTime|@iot\.id|id)(\s+asc)?\s*$")
KNOWN = {"$top", "$skip", "$filter", "$orderby", "$expand", "$count"}


def parse(query_string: bytes, default_top: int, max_top: int, feed: bool) -> Query:
    """Parse a request's query. ``feed``: the Observations feed (supports $filter/$orderby)."""
    raw = query_string.decode("latin-1")
    params = dict(parse_qsl(raw, keep_blank_values=True))
    q = Query(top=default_top)
    if "$top" in params:
        q.top = min(_int(params["$top"], "$top", minimum=1), max_top)
    if "$skip" in params:
        q.skip = _int(params["$skip"], "$skip", minimum=0)
    if "$count" in params:
        value = params["$count"].strip().lower()
        if value not in ("true", "false"):
            raise ODataError("$count must be true or false", "$count")
        q.count = value == "true"
    q.expand = params.get("$expand") or None
    if "$filter" in params:
        if not feed:
            raise ODataError("$filter is not supported on this collection", "$filter")
        q.filter_text = params["$filter"]
        q.filter_op, q.filter_time = _filter(q.filter_text)
    if "$orderby" in params:
        names = []
        for term in params["$orderby"].split(","):
            m = _ORDER_TERM.match(term)
            names.append("@iot.id" if m and m.group(1) == "id" else m.group(1) if m else term)
        order = "resultTime,@iot.id" if feed else "@iot.id"
        if names not in ((["resultTime", "@iot.id"], ["resultTime"]) if feed else (["@iot.id"],)):
            raise ODataError(
                f"unsupported $orderby: this collection is ordered by {order}", "$orderby"
            )
    return q


def _int(text: str, name: str, minimum: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ODataError(f"{name} must be an integer, got {text!r}", name) from None
    if value < minimum:
        raise ODataError(f"{name} must be >= {minimum}, got {value}", name)
    return value


def _filter(text: str) -> tuple[str, float]:
    m = _FILTER.match(text)
    if not m:
        raise ODataError(
            "unsupported $filter: use 'resultTime ge <time>' or 'resultTime gt <time>'", "$filter"
        )
    op, value = m.group(1), m.group(2).strip().strip("'")
    value = re.sub(r" (\d\d:\d\d)$", r"+\1", value)  # an unencoded '+' became a space
    if not _TIME.match(value):
        raise ODataError(f"bad time literal {value!r} in $filter (ISO 8601 with offset)", "$filter")
    t = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    return op, t.timestamp()
