"""Serialising rows of the observation feed to JSON, fast, straight from the columnar arrays."""

from __future__ import annotations

import bisect
from array import array
from datetime import date, timedelta
from itertools import accumulate

from .generator import RESULT_TOKENS, World


class _TimeText(dict):
    """Epoch seconds -> ISO 8601 text in UTC ("...Z") or local time ("...+08:00"), memoised."""

    def __init__(self, offset_hours: int):
        super().__init__()
        self.offset = offset_hours * 3600
        self.suffix = "Z" if offset_hours == 0 else f"+{offset_hours:02d}:00"
        self.days: dict[int, str] = {}

    def __missing__(self, ts: int) -> str:
        day, sec = divmod(int(ts) + self.offset, 86400)
        prefix = self.days.get(day)
        if prefix is None:
            prefix = self.days[day] = (_EPOCH + timedelta(days=day)).isoformat() + "T"
        text = f"{prefix}{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}{self.suffix}"
        self[ts] = text
        return text

    def fill(self, times) -> None:
        for ts in set(times) - self.keys():
            self.__missing__(ts)


_EPOCH = date(1970, 1, 1)


class Feed:
    def __init__(self, world: World):
        self.world = world
        self._pt = _TimeText(8)  # Asia/Shanghai
        self._rt = _TimeText(0)
        self._pt.fill(world.pt)  # up front: distinct times are few, and a cold page is slow
        self._rt.fill(world.rt)
        self._ds = {i: str(i) for i in world.datastreams}
        self._template: list = []
        self._text: str | None = None  # every row, pregenerated: row k at _starts[k]
        self._starts = array("q")

    def pregenerate(self, chunk: int = 50_000) -> None:
        """Write every row's JSON now (~140 bytes a row), so that serving a page costs one slice
        of text: for benchmarks, where the platform's cost should not be on our machine."""
        n = len(self.world.ids)
        text = ",".join(self.rows_json(i, min(i + chunk, n)) for i in range(0, n, chunk))
        # Cut at each '}},{"@iot.id":' between two rows: the next row starts 3 characters into
        # it, so a row starts len(piece before) + 14 after the one before (the first: + 3).
        steps = [len(piece) + len(_ROW_BREAK) for piece in text.split(_ROW_BREAK)[:-1]]
        if steps:
            steps[0] -= len('{"@iot.id":')
        self._starts = array("q", [0, *accumulate(steps), len(text) + 1])
        self._text = text

    def rows_json(self, i: int, j: int) -> str:
        """Rows [i, j) of the feed as JSON objects separated by commas (no brackets)."""
        if j <= i:
            return ""
        if self._text is not None:
            return self._text[self._starts[i] : self._starts[j] - 1]
        w = self.world
        n = j - i
        if len(self._template) < n * 10:
            self._template = [None, *_GLUE] * n
        parts = self._template[: n * 10]
        parts[0::10] = map(str, w.ids[i:j])
        parts[2::10] = map(self._pt.__getitem__, w.pt[i:j])
        parts[4::10] = map(self._rt.__getitem__, w.rt[i:j])
        parts[6::10] = map(repr, w.val[i:j])
        parts[8::10] = map(self._ds.__getitem__, w.ds[i:j])
        parts[-1] = "}}"
        nan_rows, label = w.nan_rows, w.label
        for k in nan_rows[bisect.bisect_left(nan_rows, i) : bisect.bisect_left(nan_rows, j)]:
            parts[(k - i) * 10 + 6] = RESULT_TOKENS[label[k]]
        return '{"@iot.id":' + "".join(parts)

    def rows(self, i: int, j: int) -> list[dict]:
        """The same rows as Python values (for tests and /truth debugging)."""
        w = self.world
        out = []
        for k in range(i, j):
            lab = w.label[k]
            result: object = w.val[k]
            if 0 < lab < 4:
                result = {1: None, 2: "NaN", 3: "n/a"}[lab]
            elif lab == 7:
                result = 10**400
            out.append(
                {
                    "@iot.id": w.ids[k],
                    "phenomenonTime": self._pt[w.pt[k]],
                    "resultTime": self._rt[w.rt[k]],
                    "result": result,
                    "Datastream": {"@iot.id": w.ds[k]},
                }
            )
        return out


_ROW_BREAK = '}},{"@iot.id":'

# the constant text between the five values of a row (id, pt, rt, result, datastream id)
_GLUE = (
    ',"phenomenonTime":"',
    None,
    '","resultTime":"',
    None,
    '","result":',
    None,
    ',"Datastream":{"@iot.id":',
    None,
    '}},{"@iot.id":',
)
