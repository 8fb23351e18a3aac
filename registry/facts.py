"""Registry facts as of a time: which version of a project, a well or a permit was in force.

A version takes effect: an entity's first version from the beginning (it describes the entity as
it has been), a later one at its `effective_from` (an admin's record, possibly in the past) or,
without one, when it was recorded (a platform sync). The version in force at a time is the newest
(highest id) of those that have taken effect by then; a local day uses the versions in force at
its local midnight (a change recorded during a day applies from the next one).

Plain SQL, for the set-based readers (jobs.rollup, registry.rescoring): `took_effect` is NULL
for a first version.
"""

# The entity each version table describes (a permit: its project and kind).
_ENTITY = {
    "project_version": "v.project_id",
    "well_version": "v.well_id",
    "permit": "v.project_id, v.kind",
}


def versions(table: str, where: str = "true") -> str:
    """Every version of `table` (rows matching `where`, alias v) with `took_effect`. `where`
    must keep or drop whole entities, or a later version could pass for a first one."""
    entity = _ENTITY[table]
    return f"""
        SELECT v.*, CASE WHEN v.id = min(v.id) OVER (PARTITION BY {entity}) THEN NULL
                         ELSE coalesce(v.effective_from, v.recorded_at) END AS took_effect
        FROM {table} v WHERE {where}
    """


def in_force(table: str, at: str, where: str = "true") -> str:
    """The version of each entity in force at the timestamptz expression `at`."""
    entity = _ENTITY[table].replace("v.", "")
    return f"""
        SELECT DISTINCT ON ({entity}) * FROM ({versions(table, where)}) x
        WHERE took_effect IS NULL OR took_effect <= {at}
        ORDER BY {entity}, id DESC
    """


def day_start(day: str) -> str:
    """SQL: the local midnight starting the date expression `day` (bind :tz)."""
    return f"(({day})::timestamp AT TIME ZONE :tz)"


def first_day(at: str) -> str:
    """SQL: the first local day that starts at or after the timestamptz expression `at`."""
    return f"(date_trunc('day', ({at}) AT TIME ZONE :tz - interval '1 microsecond')::date + 1)"
