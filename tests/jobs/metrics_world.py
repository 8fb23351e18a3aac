"""A small registry with meter data, written straight with SQL (as ingest and reviewers would leave
it), for the rollup and scoring-run tests."""

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from registry.creditcode import check_char

TZ = ZoneInfo("Asia/Shanghai")
SLOT = timedelta(minutes=15)

_codes = iter(range(10**6))


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=TZ)


def slot_ends(start: datetime, end: datetime) -> list[datetime]:
    """Phenomenon times (interval ends) of the slots in [start, end)."""
    out, t = [], start + SLOT
    while t <= end:
        out.append(t)
        t += SLOT
    return out


class World:
    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.partitions: set[date] = set()

    def _one(self, sql: str, **params):
        with self.engine.begin() as conn:
            result = conn.execute(sa.text(sql), params)
            return result.scalar() if result.returns_rows else None

    def company(self, name: str = "示例热力有限公司", code: str | None = None) -> int:
        if code is None:
            first17 = f"9114{next(_codes):013d}"
            code = first17 + check_char(first17)
        cid = self._one("INSERT INTO company (credit_code) VALUES (:c) RETURNING id", c=code)
        self._one(
            "INSERT INTO company_version (company_id, name, source) VALUES (:c, :n, 'test')",
            c=cid,
            n=name,
        )
        return cid

    def project(
        self,
        company_id: int,
        type: str = "MEDIUM_DEEP",
        city: str = "运城市",
        operating: bool = True,
        code: str | None = None,
        **zones,
    ) -> int:
        code = code or f"P{next(_codes)}"
        pid = self._one("INSERT INTO project (code) VALUES (:c) RETURNING id", c=code)
        self.project_version(pid, company_id, type, city, operating, **zones)
        return pid

    def project_version(self, pid, company_id, type, city, operating=True, **zones) -> None:
        flags = {
            "in_spring_protection_zone": False,
            "in_drinking_water_source": False,
            "in_groundwater_restricted_zone": False,
        } | zones
        self._one(
            """
            INSERT INTO project_version (project_id, company_id, name, type, city, operating,
                in_spring_protection_zone, in_drinking_water_source,
                in_groundwater_restricted_zone, source)
            VALUES (:p, :c, :n, :t, :city, :op, :z1, :z2, :z3, 'test')
            """,
            p=pid,
            c=company_id,
            n=f"项目{pid}",
            t=type,
            city=city,
            op=operating,
            z1=flags["in_spring_protection_zone"],
            z2=flags["in_drinking_water_source"],
            z3=flags["in_groundwater_restricted_zone"],
        )

    def well(self, project_id: int, role: str, aquifer: str = "K1", operating: bool = True) -> int:
        wid = self._one(
            "INSERT INTO well (code) VALUES (:c) RETURNING id", c=f"W{next(_codes)}-{role[0]}"
        )
        self._one(
            """
            INSERT INTO well_version (well_id, project_id, role, aquifer, confined, drilled_on,
                                      operating, source)
            VALUES (:w, :p, :r, :a, false, '2020-05-01', :op, 'test')
            """,
            w=wid,
            p=project_id,
            r=role,
            a=aquifer,
            op=operating,
        )
        return wid

    def datastream(self, well_id: int, indicator: str, accumulation: str = "interval") -> int:
        unit = {"water_level": "m", "water_temperature": "degC", "water_quality_tds": "mg/L",
                "water_quality_ph": "pH"}.get(indicator, "m3")  # fmt: skip
        return self._one(
            """
            INSERT INTO datastream (platform_id, well_id, indicator, unit, accumulation, name)
            VALUES (:pid, :w, :i, :u, :a, '') RETURNING id
            """,
            pid=f"ds{next(_codes)}",
            w=well_id,
            i=indicator,
            u=unit,
            a=accumulation,
        )

    def permit(self, project_id: int, annual: float | None, daily: float | None) -> None:
        self._one(
            """
            INSERT INTO permit (project_id, kind, number, annual_total_m3, daily_intensity_m3,
                                valid_from, recorded_by)
            VALUES (:p, 'WATER_PERMIT', :n, :a, :d, '2024-01-01', 'test')
            """,
            p=project_id,
            n=f"取水{next(_codes)}",
            a=annual,
            d=daily,
        )

    def report(self, project_id: int, month: date, late_days: int = 10) -> None:
        """A monthly operating report, submitted `late_days` into the next month."""
        self._one(
            "INSERT INTO monthly_report (project_id, month, submitted_on, recorded_by) "
            "VALUES (:p, :m, (CAST(:m AS date) + interval '1 month')::date + :d - 1, 'reviewer')",
            p=project_id,
            m=month,
            d=late_days,
        )

    def observe(
        self,
        ds: int,
        times: Iterable[datetime],
        value: float | Callable[[int, datetime], float],
        revision: int = 0,
        received: timedelta = timedelta(minutes=2),
    ) -> int:
        """Store observations and mark their days dirty, as ingest does."""
        times = list(times)
        if not times:
            return 0
        values = [value(i, t) if callable(value) else value for i, t in enumerate(times)]
        with self.engine.begin() as conn:
            well = conn.scalar(sa.text("SELECT well_id FROM datastream WHERE id = :d"), {"d": ds})
            for month in {date(t.astimezone(UTC).year, t.astimezone(UTC).month, 1) for t in times}:
                if month not in self.partitions:
                    conn.execute(
                        sa.text("SELECT geocredit_ensure_observation_partition(:m)"), {"m": month}
                    )
                    self.partitions.add(month)
            conn.execute(
                sa.text(
                    """
                    INSERT INTO observation (well_id, datastream_id, phenomenon_time, revision,
                                             value, result_time, platform_obs_id)
                    SELECT :w, :d, t, :rev, v, t + :rcv, 1
                    FROM unnest(CAST(:times AS timestamptz[]), CAST(:values AS float8[])) x(t, v)
                    """
                ),
                {"w": well, "d": ds, "rev": revision, "rcv": received, "times": times,
                 "values": values},
            )  # fmt: skip
            conn.execute(
                sa.text(
                    """
                    INSERT INTO dirty_day (datastream_id, day)
                    SELECT DISTINCT :d, ((t - interval '15 minutes') AT TIME ZONE 'Asia/Shanghai')::date
                    FROM unnest(CAST(:times AS timestamptz[])) t
                    ON CONFLICT DO NOTHING
                    """
                ),
                {"d": ds, "times": times},
            )
        return len(times)

    def watermark(self, t: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    """
                    INSERT INTO ingest_watermark (source, result_time, platform_obs_id)
                    VALUES ('observations', :t, 1)
                    ON CONFLICT (source) DO UPDATE SET result_time = EXCLUDED.result_time
                    """
                ),
                {"t": t},
            )

    def rows(self, sql: str, **params) -> list:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).all()
