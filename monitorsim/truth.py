"""What a correct client must end up with after reading the visible feed.

This replays the feed using the generator's labels (which rows it made bad, and why); it does not
re-apply the validation rules. The tests replay the raw JSON with the rules, independently.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict

from .generator import LABEL_REASON, REASONS, World


def truth(world: World, hi: int) -> dict:
    """Truth for the first ``hi`` rows of the feed (those with resultTime <= now)."""
    latest: dict[tuple[int, int], float] = {}
    quarantined: dict[int, Counter] = defaultdict(Counter)
    duplicates: Counter = Counter()
    corrections: Counter = Counter()
    label = world.label
    for d, p, v, lab in zip(world.ds[:hi], world.pt[:hi], world.val[:hi], label[:hi], strict=True):
        if lab:
            quarantined[d][LABEL_REASON[lab]] += 1
            continue
        key = (d, p)
        old = latest.get(key)
        if old is None:
            latest[key] = v
        elif old == v:
            duplicates[d] += 1
        else:
            latest[key] = v
            corrections[d] += 1

    per_ds: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for (d, p), v in latest.items():
        per_ds[d].append((p, v))

    datastreams: dict[str, dict] = {}
    projects: dict[str, dict[str, list[float]]] = {}
    totals_q: Counter = Counter()
    for d, ds in world.datastreams.items():
        div = 1000.0 if ds.unit == "L" else 1.0
        readings = sorted(per_ds.get(d, ()))
        values = [v / div for _, v in readings]
        entry: dict = {
            "property": ds.prop,
            "stored": len(readings),
            "sum": math.fsum(values),
            "quarantined": dict(sorted(quarantined[d].items())),
            "duplicates": duplicates[d],
            "corrections": corrections[d],
        }
        totals_q.update(quarantined[d])
        if ds.is_volume:
            entry["volume"] = _volume(values) if ds.accumulation == "cumulative" else entry["sum"]
            p = projects.setdefault(ds.well.project.code, {"extraction": [], "reinjection": []})
            p[ds.prop.removesuffix("_volume")].append(entry["volume"])
        datastreams[str(d)] = entry

    project_totals = {}
    for code, vols in projects.items():
        e, r = math.fsum(vols["extraction"]), math.fsum(vols["reinjection"])
        project_totals[code] = {"extraction": e, "reinjection": r, "ratio": r / e if e else None}
    return {
        "rows": hi,
        "datastreams": datastreams,
        "projects": project_totals,
        "totals": {
            "rows": hi,
            "stored": sum(e["stored"] for e in datastreams.values()),
            "quarantined": {r: totals_q[r] for r in REASONS},
            "quarantinedRows": sum(totals_q.values()),
            "duplicates": sum(duplicates.values()),
            "corrections": sum(corrections.values()),
        },
    }


def _volume(readings: list[float]) -> float:
    """Interval volume derived from meter readings in phenomenonTime order.

    A rise adds the difference; a drop is a meter reset, and the new reading is the volume since
    the restart from zero. The first reading is only the baseline.
    """
    parts = []
    for prev, cur in itertools.pairwise(readings):
        parts.append(cur - prev if cur >= prev else cur)
    return math.fsum(parts)
