"""What a correct client must end up with after reading the visible feed.

This replays the feed using the generator's labels (which rows it made bad, and why); it does not
re-apply the validation rules. The tests replay the raw JSON with the rules, independently.
A cumulative meter's `volume` is what it really measured (the generator's true volumes), which
equals the differences of its readings (a drop: a restart from zero) unless meter faults were
injected (`meterFaults`).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

from .config import SLOT
from .generator import LABEL_REASON, POISON_REASONS, REASONS, World


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
    totals_m: Counter = Counter()
    faults: dict[int, Counter] = defaultdict(Counter)
    for kind, d, _, _ in world.meter_events:
        faults[d][kind] += 1
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
            if ds.accumulation == "cumulative":
                entry["volume"] = _metered(world, d, [p for p, _ in readings])
                entry["meterFaults"] = dict(sorted(faults[d].items()))
                totals_m.update(faults[d])
            else:
                entry["volume"] = entry["sum"]
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
            "quarantined": {r: totals_q[r] for r in REASONS}
            | {r: totals_q[r] for r in POISON_REASONS if totals_q[r]},
            "quarantinedRows": sum(totals_q.values()),
            "duplicates": sum(duplicates.values()),
            "corrections": sum(corrections.values()),
            "meterFaults": dict(sorted(totals_m.items())),
        },
    }


def _metered(world: World, d: int, times: list[int]) -> float:
    """The volume a cumulative meter really measured between its first and last stored readings
    (phenomenonTime order): its true volume per slot, whatever the readings say — a meter's
    glitches, spikes and jumps are no volume; after a reset the new meter counts on."""
    if len(times) < 2:
        return 0.0
    steps = world.true_steps[d]
    first, last = ((t - world.t0) // SLOT - 1 for t in (times[0], times[-1]))
    return math.fsum(steps[first + 1 : last + 1])
