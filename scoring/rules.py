"""Rule evaluation: company inputs → findings (one method per rule family).

Every comparison with a threshold allows EPS of float noise, so a value exactly on a threshold
(0.95, a 2.0 m rise) is judged on the threshold, not on how the division happened to round.
"""

import math
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from scoring import periods
from scoring.model import (
    COUNTING,
    Finding,
    FindingStatus,
    InspectionFinding,
    MonthFacts,
    MonthlyReport,
    NotEvaluated,
    NotEvaluatedWhy,
    PostEvaluation,
    ProjectFacts,
    ProjectMonth,
    ProjectType,
    SeasonLevel,
    Severity,
    Source,
    Verdict,
    WellRole,
)
from scoring.rulebook import Rulebook

EPS = 1e-9

SEVERITY_LABEL = {Severity.MINOR: "一般", Severity.MAJOR: "较重", Severity.CRITICAL: "严重"}
VERDICT_LABEL = {Verdict.CONDITIONAL: "有条件通过", Verdict.FAIL: "不通过"}
TYPE_LABEL = {
    ProjectType.CLOSED_LOOP: "地源热泵（取热不取水）",
    ProjectType.SHALLOW_WATER_SOURCE: "水源热泵",
    ProjectType.MEDIUM_DEEP: "中深层水热型",
    ProjectType.DIRECT_USE: "温泉洗浴等直接利用",
}
STREAM_LABEL = {"extraction": "取水", "reinjection": "回灌"}
MONITORING_LABEL = {"level": "水位", "temperature": "水温", "quality": "水质"}

_UNSET: Any = object()
_MISSING = NotEvaluatedWhy.REGISTRY_FACT_MISSING
_METERING_RULES = ("NO_METERING", "METERING_GAP")
_VOLUME_RULES = ("REINJ_RATIO", "NO_REINJECTION")


def _r(value: float) -> float:
    """Evidence numbers: rounded so that re-derived findings compare equal."""
    return round(value, 4)


def _clock(
    rb: Rulebook, now: datetime, watermark: datetime | None
) -> tuple[date, date, date | None]:
    """Local today, lookback start and watermark day; a scoring run asks with the same `now` and
    watermark for every company, so the last answer is kept."""
    last = rb.memo.get("clock")
    if last is not None and last[0] == now and last[1] == watermark:
        return last[2]
    values = (
        periods.local_date(now, rb),
        periods.lookback_start(now, rb),
        None if watermark is None else periods.local_date(watermark, rb),
    )
    rb.memo["clock"] = (now, watermark, values)
    return values


class _Judged:
    """What a month's registry facts mean for its rules (computed once per distinct facts)."""

    __slots__ = ("bounds", "facts", "limits", "no_permit", "takes_water", "threshold", "type")

    def __init__(self, facts: MonthFacts, rb: Rulebook) -> None:
        self.facts = facts
        annual, daily = facts.permit_annual_m3 is None, facts.permit_daily_m3 is None
        self.no_permit = (
            "no water permit annual total or daily intensity registered"
            if annual and daily
            else "no water permit annual total registered"
            if annual
            else "no water permit daily intensity registered"
            if daily
            else ""
        )
        self.type = facts.type
        self.takes_water = facts.type in rb.water_taking
        self.threshold = rb.rules.REINJ_RATIO.threshold.get(facts.type)
        self.limits = {q.aquifer: q for q in facts.quality_limits}
        self.bounds = {
            q.aquifer: (
                math.inf if q.tds_max_mg_l is None else q.tds_max_mg_l + EPS,
                -math.inf if q.ph_min is None else q.ph_min - EPS,
                math.inf if q.ph_max is None else q.ph_max + EPS,
            )
            for q in facts.quality_limits
        }


class Deriver:
    """Derives the findings of one company as of `now`; statuses come from the caller."""

    def __init__(
        self,
        rulebook: Rulebook,
        now: datetime,
        *,
        watermark: datetime | None,
        overturned: set[str],
        under_appeal: set[str],
        repaired: set[str],
    ) -> None:
        self.rb = rulebook
        self.watermark = watermark
        self.today, self.window_start, self.watermark_day = _clock(rulebook, now, watermark)
        self.overturned = overturned
        self.under_appeal = under_appeal
        self.repaired = repaired
        self.findings: list[Finding] = []
        self.not_evaluated: set[NotEvaluated] = set()
        self._subjects: dict[str, str] = {}

    # ---------------------------------------------------------------------------- helpers

    def add(
        self,
        key: str,
        rule_id: str,
        clause: str,
        severity: Severity,
        deduction: float,
        project_code: str | None,
        window: tuple[date, date],
        final: bool,
        source: Source,
        message: str,
        evidence: dict[str, Any],
    ) -> None:
        if key in self.overturned:
            status = FindingStatus.OVERTURNED
        elif key in self.repaired:
            status = FindingStatus.REPAIRED
        elif key in self.under_appeal:
            status = FindingStatus.UNDER_APPEAL
        else:
            status = FindingStatus.ACTIVE
        # Registry facts are current: they count as long as they hold, whatever their date.
        in_window = source is Source.REGISTRY or window[1] >= self.window_start
        self.findings.append(
            Finding(
                key=key,
                rule_id=rule_id,
                policy_clause=clause,
                severity=severity,
                deduction=float(deduction),
                project_code=project_code,
                window_start=window[0],
                window_end=window[1],
                final=final,
                source=source,
                message=message,
                evidence=evidence,
                status=status,
                counts=in_window and status in COUNTING,
            )
        )

    def skip(
        self,
        project_code: str,
        rule_id: str,
        reason: str,
        why: NotEvaluatedWhy = _MISSING,
        window: tuple[date, date] | None = None,
    ) -> None:
        self.not_evaluated.add(NotEvaluated(project_code, rule_id, reason, why, window))

    def subject(self, project_code: str | None, projects: dict[str, ProjectFacts]) -> str:
        if project_code is None:
            return "企业"
        text = self._subjects.get(project_code)
        if text is None:
            p = projects.get(project_code)
            text = f"项目 {project_code}（{p.name}）" if p else f"项目 {project_code}"
            self._subjects[project_code] = text
        return text

    # ------------------------------------------------------------------- monthly metrics

    def project_months(
        self,
        p: ProjectFacts,
        months: Sequence[ProjectMonth],
        reports: dict[date, date],
        subject: str,
    ) -> None:
        """Volume, metering, cap and quality rules, and MONTHLY_REPORT, over one project's months
        (sorted by month; `reports`: month → submission date), each judged with the registry
        facts of its month (ProjectMonth.facts; else the project's current ones). Kept in one
        loop with the checks inline: this is the hot path of a scoring run."""
        rb = self.rb
        today, watermark_day = self.today, self.watermark_day
        scopes = self._report_scopes(p.city)
        first_month = periods.month_of(rb.applies_from)
        rules = rb.rules
        no_reinj_below = rules.NO_REINJECTION.below - EPS
        gap_below = rules.METERING_GAP.minor_below - EPS
        mon_below = rules.MONITORING_GAP.below - EPS
        current = MonthFacts(p.type, p.permit_annual_m3, p.permit_daily_m3, tuple(p.quality_limits))
        judged: dict[MonthFacts, _Judged] = {}
        capped_years: set[int] = set()
        for m in months:
            if m.operating and watermark_day is not None:
                scope = scopes.get(m.month, _UNSET)
                if scope is _UNSET:
                    scope = scopes[m.month] = self._report_scope(p.city, m.month)
                if scope is not None and scope[0] <= watermark_day and today > scope[2]:
                    submitted = reports.get(m.month)
                    if submitted is None or submitted > scope[2]:
                        self._monthly_report(p, m, scope, submitted, subject)
            facts = m.facts or current
            j = judged.get(facts)
            if j is None:
                j = judged[facts] = _Judged(facts, rb)
            if not (j.takes_water and m.evaluated) or m.month < first_month:
                continue
            threshold = j.threshold
            if m.expected_slots == 0 and m.outage_slots > 0:
                # The platform was silent for the whole evaluated part: judge nothing.
                self._not_judged(p, m, NotEvaluatedWhy.ALL_OUTAGE, threshold is not None)
                continue
            if j.no_permit:
                self.skip(p.code, "EXTRACTION_CAP", j.no_permit, window=self._month_window(m))
            layers = m.layers
            if threshold is not None and m.reinjection_completeness != 0:
                if len(layers) == 1:
                    extraction = layers[0].extraction_m3
                    same = min(layers[0].reinjection_m3, extraction)
                else:
                    extraction = math.fsum(lay.extraction_m3 for lay in layers)
                    same = math.fsum(min(lay.reinjection_m3, lay.extraction_m3) for lay in layers)
                if extraction > 0 and same < (threshold - EPS) * extraction:
                    self._ratio(p, m, j.type, subject, threshold, extraction, same)
                    if same < no_reinj_below * extraction:
                        self._no_reinjection(p, m, subject, extraction, same)
            if m.no_operating_wells:
                self._not_judged(p, m, NotEvaluatedWhy.NO_OPERATING_WELLS, False)
            if m.operating:
                ec = m.extraction_completeness
                rc = m.reinjection_completeness if threshold is not None else None
                if (ec is not None and ec < gap_below) or (rc is not None and rc < gap_below):
                    self._metering(p, m, subject, ec, rc)
                lc, tc, qc = (
                    m.level_completeness,
                    m.temperature_completeness,
                    m.quality_completeness,
                )
                if (
                    (lc is not None and lc < mon_below)
                    or (tc is not None and tc < mon_below)
                    or (qc is not None and qc < mon_below)
                ):
                    self._monitoring_gap(p, m, subject)
            if m.days_over_daily_limit > 0:
                self._daily_cap(p, m, j.facts, subject)
            ytd = m.ytd_extraction_m3
            annual = j.facts.permit_annual_m3
            if (
                annual is not None
                and ytd is not None
                and ytd > annual + EPS
                and m.month.year not in capped_years
            ):
                capped_years.add(m.month.year)
                self._annual_cap(p, m, subject, ytd, annual)
            bounds = j.bounds
            exceeded = False
            for lay in layers:
                tds, ph = lay.reinjection_tds_mean, lay.reinjection_ph_mean
                if tds is None and ph is None:
                    continue
                b = bounds.get(lay.aquifer)
                if b is None:
                    self.skip(
                        p.code, "QUALITY",
                        f"no quality limits registered for aquifer {lay.aquifer}",
                        window=self._month_window(m),
                    )  # fmt: skip
                elif (tds is not None and tds > b[0]) or (
                    ph is not None and (ph < b[1] or ph > b[2])
                ):
                    exceeded = True
            if exceeded:
                self._quality(p, m, subject, j.limits)

    def _not_judged(
        self, p: ProjectFacts, m: ProjectMonth, why: NotEvaluatedWhy, volumes: bool
    ) -> None:
        reason = {
            NotEvaluatedWhy.ALL_OUTAGE: "the platform was silent for the whole evaluated part",
            NotEvaluatedWhy.NO_OPERATING_WELLS: "flagged operating, but no well is",
        }[why]
        window = self._month_window(m)
        for rule_id in _METERING_RULES + (_VOLUME_RULES if volumes else ()):
            self.skip(p.code, rule_id, reason, why, window)

    def _month_window(self, m: ProjectMonth) -> tuple[date, date]:
        return m.month, periods.month_end(m.month)

    def _layers_evidence(self, m: ProjectMonth) -> list[dict[str, Any]]:
        return [
            {
                "aquifer": lay.aquifer,
                "extraction_m3": _r(lay.extraction_m3),
                "reinjection_m3": _r(lay.reinjection_m3),
            }
            for lay in sorted(m.layers, key=lambda lay: lay.aquifer)
        ]

    def _month_evidence(self, m: ProjectMonth, **values: Any) -> dict[str, Any]:
        return {"month": periods.month_label(m.month), "final": m.final, **values}

    def _ratio(
        self,
        p: ProjectFacts,
        m: ProjectMonth,
        project_type: ProjectType,
        subject: str,
        threshold: float,
        extraction: float,
        same: float,
    ) -> None:
        rule = self.rb.rules.REINJ_RATIO
        ratio = same / extraction
        minor = ratio >= threshold - rule.minor_band - EPS
        label = periods.month_label(m.month)
        self.add(
            f"REINJ_RATIO:{p.code}:{label}",
            "REINJ_RATIO",
            rule.clause_by_type.get(project_type, rule.clause),
            Severity.MINOR if minor else Severity.MAJOR,
            rule.minor if minor else rule.major,
            p.code,
            self._month_window(m),
            m.final,
            Source.METRICS,
            rule.message.format(
                subject=subject,
                month=label,
                ratio=ratio,
                threshold=threshold,
                reinjection_m3=same,
                extraction_m3=extraction,
            ),
            self._month_evidence(
                m,
                ratio=_r(ratio),
                threshold=threshold,
                extraction_m3=_r(extraction),
                same_layer_reinjection_m3=_r(same),
                layers=self._layers_evidence(m),
                reinjection_completeness=m.reinjection_completeness,
            ),
        )

    def _no_reinjection(
        self, p: ProjectFacts, m: ProjectMonth, subject: str, extraction: float, same: float
    ) -> None:
        rule = self.rb.rules.NO_REINJECTION
        ratio = same / extraction
        label = periods.month_label(m.month)
        self.add(
            f"NO_REINJECTION:{p.code}:{label}",
            "NO_REINJECTION",
            rule.clause,
            Severity.CRITICAL,
            self.rb.score.critical_deduction,
            p.code,
            self._month_window(m),
            m.final,
            Source.METRICS,
            rule.message.format(
                subject=subject,
                month=label,
                ratio=ratio,
                below=rule.below,
                reinjection_m3=same,
                extraction_m3=extraction,
            ),
            self._month_evidence(
                m,
                ratio=_r(ratio),
                below=rule.below,
                extraction_m3=_r(extraction),
                same_layer_reinjection_m3=_r(same),
                layers=self._layers_evidence(m),
            ),
        )

    def _metering(
        self,
        p: ProjectFacts,
        m: ProjectMonth,
        subject: str,
        extraction: float | None,
        reinjection: float | None,
    ) -> None:
        label = periods.month_label(m.month)
        streams = {"extraction": extraction, "reinjection": reinjection}
        completeness = {k: v for k, v in streams.items() if v is not None}
        evidence = self._month_evidence(
            m,
            completeness=completeness,
            expected_slots=m.expected_slots,
            outage_slots=m.outage_slots,
        )
        silent = [k for k, v in completeness.items() if v <= 0]
        if silent:
            rule = self.rb.rules.NO_METERING
            self.add(
                f"NO_METERING:{p.code}:{label}",
                "NO_METERING",
                rule.clause,
                Severity.CRITICAL,
                self.rb.score.critical_deduction,
                p.code,
                self._month_window(m),
                m.final,
                Source.METRICS,
                rule.message.format(
                    subject=subject, month=label, stream="、".join(STREAM_LABEL[s] for s in silent)
                ),
                evidence | {"streams_without_data": silent},
            )
        partial = [(v, k) for k, v in completeness.items() if v > 0]
        if not partial:
            return
        worst, stream = min(partial)
        gap = self.rb.rules.METERING_GAP
        if worst >= gap.minor_below - EPS:
            return
        major = worst < gap.major_below - EPS
        self.add(
            f"METERING_GAP:{p.code}:{label}",
            "METERING_GAP",
            gap.clause,
            Severity.MAJOR if major else Severity.MINOR,
            gap.major if major else gap.minor,
            p.code,
            self._month_window(m),
            m.final,
            Source.METRICS,
            gap.message.format(
                subject=subject,
                month=label,
                stream=STREAM_LABEL[stream],
                completeness=worst,
                threshold=gap.major_below if major else gap.minor_below,
                expected_slots=m.expected_slots,
            ),
            evidence | {"worst_stream": stream},
        )

    def _monitoring_gap(self, p: ProjectFacts, m: ProjectMonth, subject: str) -> None:
        rule = self.rb.rules.MONITORING_GAP
        values = {
            "level": m.level_completeness,
            "temperature": m.temperature_completeness,
            "quality": m.quality_completeness,
        }
        low = {k: v for k, v in values.items() if v is not None and v < rule.below - EPS}
        label = periods.month_label(m.month)
        details = "、".join(f"{MONITORING_LABEL[k]} {v:.1%}" for k, v in low.items())
        self.add(
            f"MONITORING_GAP:{p.code}:{label}",
            "MONITORING_GAP",
            rule.clause,
            Severity.WARNING,
            0,
            p.code,
            self._month_window(m),
            m.final,
            Source.METRICS,
            rule.message.format(
                subject=subject, month=label, threshold=rule.below, details=details
            ),
            self._month_evidence(m, completeness=low, expected_slots=m.expected_slots),
        )

    def _daily_cap(self, p: ProjectFacts, m: ProjectMonth, facts: MonthFacts, subject: str) -> None:
        rule = self.rb.rules.EXTRACTION_CAP
        if facts.permit_daily_m3 is None:
            return  # not evaluated (project_months lists it)
        days = m.days_over_daily_limit
        label = periods.month_label(m.month)
        max_daily = m.max_daily_extraction_m3
        self.add(
            f"EXTRACTION_CAP:{p.code}:{label}:DAILY",
            "EXTRACTION_CAP",
            rule.clause,
            Severity.MINOR,
            min(days * rule.daily_minor_per_day, rule.daily_month_cap),
            p.code,
            self._month_window(m),
            m.final,
            Source.METRICS,
            rule.message_daily.format(
                subject=subject,
                month=label,
                days=days,
                permit_daily_m3=facts.permit_daily_m3,
                max_daily_m3=max_daily,
            ),
            self._month_evidence(
                m,
                days_over_limit=days,
                max_daily_extraction_m3=_r(max_daily),
                permit_daily_m3=facts.permit_daily_m3,
            ),
        )

    def _annual_cap(
        self, p: ProjectFacts, m: ProjectMonth, subject: str, ytd: float, annual: float
    ) -> None:
        rule = self.rb.rules.EXTRACTION_CAP
        year = m.month.year
        start = max(date(year, 1, 1), self.rb.applies_from)
        self.add(
            f"EXTRACTION_CAP:{p.code}:{year}",
            "EXTRACTION_CAP",
            rule.clause,
            Severity.MAJOR,
            rule.annual_major,
            p.code,
            (start, periods.month_end(m.month)),
            m.final,
            Source.METRICS,
            rule.message_annual.format(
                subject=subject,
                month=periods.month_label(m.month),
                year=year,
                ytd_m3=ytd,
                permit_m3=annual,
            ),
            self._month_evidence(m, year=year, ytd_extraction_m3=_r(ytd), permit_annual_m3=annual),
        )

    def _quality(
        self, p: ProjectFacts, m: ProjectMonth, subject: str, limits: dict[str, Any]
    ) -> None:
        rule = self.rb.rules.QUALITY
        exceed: list[dict[str, Any]] = []
        for lay in sorted(m.layers, key=lambda lay: lay.aquifer):
            lim = limits.get(lay.aquifer)
            if lim is None:
                continue  # not evaluated (project_months lists it)
            tds, ph = lay.reinjection_tds_mean, lay.reinjection_ph_mean
            if tds is not None and lim.tds_max_mg_l is not None and tds > lim.tds_max_mg_l + EPS:
                exceed.append(
                    {
                        "aquifer": lay.aquifer,
                        "parameter": "TDS",
                        "mean": _r(tds),
                        "max": lim.tds_max_mg_l,
                    }
                )
            if ph is not None and lim.ph_min is not None and ph < lim.ph_min - EPS:
                exceed.append(
                    {"aquifer": lay.aquifer, "parameter": "pH", "mean": _r(ph), "min": lim.ph_min}
                )
            if ph is not None and lim.ph_max is not None and ph > lim.ph_max + EPS:
                exceed.append(
                    {"aquifer": lay.aquifer, "parameter": "pH", "mean": _r(ph), "max": lim.ph_max}
                )
        if not exceed:
            return
        details = "；".join(_quality_text(e) for e in exceed)
        label = periods.month_label(m.month)
        self.add(
            f"QUALITY:{p.code}:{label}",
            "QUALITY",
            rule.clause,
            Severity.MAJOR,
            rule.major,
            p.code,
            self._month_window(m),
            m.final,
            Source.METRICS,
            rule.message.format(subject=subject, month=label, details=details),
            self._month_evidence(m, exceedances=exceed),
        )

    def _monthly_report(
        self,
        p: ProjectFacts,
        m: ProjectMonth,
        scope: tuple[date, date, date],
        submitted: date | None,
        subject: str,
    ) -> None:
        first, last, due = scope
        rule = self.rb.rules.MONTHLY_REPORT
        label = periods.month_label(m.month)
        self.add(
            f"MONTHLY_REPORT:{p.code}:{label}",
            "MONTHLY_REPORT",
            rule.clause,
            Severity.MINOR,
            rule.minor,
            p.code,
            self._month_window(m),
            True,
            Source.REVIEWER,
            rule.message.format(subject=subject, month=label, due=due),
            {
                "month": label,
                "heating_days": [first.isoformat(), last.isoformat()],
                "due": due.isoformat(),
                "submitted_on": None if submitted is None else submitted.isoformat(),
            },
        )

    def _report_scopes(self, city: str) -> dict[date, tuple[date, date, date] | None]:
        return self.rb.memo.setdefault(("report_scopes", city), {})

    def _report_scope(self, city: str, month: date) -> tuple[date, date, date] | None:
        """Heating-season days of the month on or after applies_from, and the report's due date."""
        days = periods.heating_season_days(city, month, self.rb)
        start = self.rb.applies_from
        if days is None or days[1] < start:
            return None
        return max(days[0], start), days[1], periods.report_due(month, self.rb)

    # ------------------------------------------------------------------ other inputs

    def water_level(self, p: ProjectFacts, levels: Sequence[SeasonLevel], subject: str) -> None:
        """Each season's mean depth to water against the previous season's (from its stored
        levels, also before applies_from); a season without a previous one is not evaluated."""
        rule = self.rb.rules.WATER_LEVEL
        by_season = {lv.season: lv.mean_depth_m for lv in levels}
        first = periods.season_of(self.rb.applies_from, p.city, self.rb)
        first = self.rb.applies_from.year if first is None else first
        for season, depth in sorted(by_season.items()):
            if season < first:
                continue
            previous = by_season.get(season - 1)
            if previous is None:
                label = periods.season_label(season)
                self.skip(
                    p.code, "WATER_LEVEL",
                    f"no water levels stored for the heating season before {label}",
                    NotEvaluatedWhy.NO_PREVIOUS_SEASON,
                    periods.heating_season_bounds(p.city, season, self.rb),
                )  # fmt: skip
                continue
            if depth - previous <= rule.max_rise_m + EPS:
                continue
            start, end = periods.heating_season_bounds(p.city, season, self.rb)
            label = periods.season_label(season)
            rise = depth - previous
            self.add(
                f"WATER_LEVEL:{p.code}:{label}",
                "WATER_LEVEL",
                rule.clause,
                Severity.WARNING,
                0,
                p.code,
                (start, end),
                periods.is_final(periods.month_of(end), self.watermark, self.rb),
                Source.METRICS,
                rule.message.format(
                    subject=subject,
                    season=label,
                    depth_m=depth,
                    previous_depth_m=previous,
                    rise_m=rise,
                    max_rise_m=rule.max_rise_m,
                ),
                {
                    "season": label,
                    "mean_depth_m": _r(depth),
                    "previous_mean_depth_m": _r(previous),
                    "rise_m": _r(rise),
                    "max_rise_m": rule.max_rise_m,
                },
            )

    def registry(self, p: ProjectFacts, subject: str) -> None:
        rb = self.rb
        start = max(p.registered_on, rb.applies_from)
        window = (start, start)
        ban = rb.rules.ZONE_BAN
        built = min((w.drilled_on for w in p.wells if w.drilled_on is not None), default=None)
        built = p.registered_on if built is None else built
        legacy = ban.built_on_or_after is not None and built < ban.built_on_or_after
        spring = ("SPRING_PROTECTION", "泉域重点保护区", ban.spring_zone_types)
        drinking = ("DRINKING_WATER_SOURCE", "集中式地下水饮用水水源地", ban.drinking_water_types)
        zones = (
            (*spring, p.in_spring_protection_zone),
            (*drinking, p.in_drinking_water_source),
        )
        for code, zone, types, flag in zones:
            if p.type not in types:
                continue
            if flag is None:
                self.skip(p.code, "ZONE_BAN", f"zone flag unknown: {zone}")
            elif flag and legacy:
                self._legacy(p, subject, code, zone, built)
            elif flag:
                self.add(
                    f"ZONE_BAN:{p.code}:{code}",
                    "ZONE_BAN",
                    ban.clause,
                    Severity.CRITICAL,
                    rb.score.critical_deduction,
                    p.code,
                    window,
                    True,
                    Source.REGISTRY,
                    ban.message.format(subject=subject, zone=zone, type_label=TYPE_LABEL[p.type]),
                    {"zone": code, "project_type": p.type.value},
                )
        confined_rule = rb.rules.CONFINED_WATER
        if p.type in confined_rule.applies_to:
            extraction_wells = [w for w in p.wells if w.role is WellRole.EXTRACTION]
            confined = sorted(w.code for w in extraction_wells if w.confined)
            if confined:
                self.add(
                    f"CONFINED_WATER:{p.code}",
                    "CONFINED_WATER",
                    confined_rule.clause,
                    Severity.CRITICAL,
                    rb.score.critical_deduction,
                    p.code,
                    window,
                    True,
                    Source.REGISTRY,
                    confined_rule.message.format(subject=subject, wells="、".join(confined)),
                    {"confined_extraction_wells": confined},
                )
            elif not extraction_wells:
                self.skip(p.code, "CONFINED_WATER", "no extraction well registered")
            elif any(w.confined is None for w in extraction_wells):
                self.skip(p.code, "CONFINED_WATER", "confined-water flag unknown for a well")
        new_rule = rb.rules.NEW_WELL_IN_ZONE
        if p.type in new_rule.applies_to:
            if p.in_groundwater_restricted_zone is None:
                self.skip(p.code, "NEW_WELL_IN_ZONE", "groundwater zone flag unknown")
            elif p.in_groundwater_restricted_zone:
                for w in sorted(p.wells, key=lambda w: w.code):
                    if w.role is WellRole.MONITORING:
                        continue
                    if w.drilled_on is None:
                        self.skip(p.code, "NEW_WELL_IN_ZONE", f"drilling date unknown: {w.code}")
                    elif w.drilled_on >= new_rule.drilled_on_or_after:
                        self.add(
                            f"NEW_WELL_IN_ZONE:{p.code}:{w.code}",
                            "NEW_WELL_IN_ZONE",
                            new_rule.clause,
                            Severity.CRITICAL,
                            rb.score.critical_deduction,
                            p.code,
                            (w.drilled_on, w.drilled_on),
                            True,
                            Source.REGISTRY,
                            new_rule.message.format(
                                subject=subject, well=w.code, drilled_on=w.drilled_on.isoformat()
                            ),
                            {
                                "well": w.code,
                                "role": w.role.value,
                                "drilled_on": w.drilled_on.isoformat(),
                            },
                        )

    def _legacy(self, p: ProjectFacts, subject: str, code: str, zone: str, built: date) -> None:
        """A project built before the zone ban applied: a warning that puts the company on the
        key-supervision list, no deduction (an inspection finding is how it is sanctioned)."""
        rb = self.rb
        rule = rb.rules.LEGACY_IN_BANNED_ZONE
        since = rb.rules.ZONE_BAN.built_on_or_after
        self.add(
            f"LEGACY_IN_BANNED_ZONE:{p.code}:{code}",
            "LEGACY_IN_BANNED_ZONE",
            rule.clause,
            Severity.WARNING,
            0,
            p.code,
            (built, built),
            True,
            Source.REGISTRY,
            rule.message.format(
                subject=subject,
                zone=zone,
                type_label=TYPE_LABEL[p.type],
                built_on=built.isoformat(),
                since=since.isoformat(),
            ),
            {
                "zone": code,
                "project_type": p.type.value,
                "built_on": built.isoformat(),
                "ban_applies_from": since.isoformat(),
            },
        )

    def inspection(self, f: InspectionFinding, subject: str) -> None:
        rb = self.rb
        day = (f.inspected_on, f.inspected_on)
        evidence: dict[str, Any] = {
            "inspection_id": f.inspection_id,
            "inspection_finding_id": f.id,
            "inspected_on": f.inspected_on.isoformat(),
            "severity": f.severity.value,
        }
        if f.falsified_data:
            rule = rb.rules.FALSIFIED_DATA
            self.add(
                f"FALSIFIED_DATA:{f.id}",
                "FALSIFIED_DATA",
                rule.clause,
                Severity.CRITICAL,
                rb.score.critical_deduction,
                f.project_code,
                day,
                True,
                Source.REVIEWER,
                rule.message.format(
                    subject=subject,
                    date=f.inspected_on.isoformat(),
                    inspection_id=f.inspection_id,
                    description=f.description,
                ),
                evidence,
            )
            return
        rule = rb.rules.INSPECTION
        deadline, rectified = f.rectification_deadline, f.rectified_on
        if rectified is not None and rectified > self.today:
            rectified = None
        late = deadline is not None and (
            (rectified is None and self.today > deadline)
            or (rectified is not None and rectified > deadline)
        )
        if f.severity is Severity.CRITICAL:
            deduction = rb.score.critical_deduction
        else:
            deduction = rule.major if f.severity is Severity.MAJOR else rule.minor
            if late:
                deduction *= rule.unrectified_factor
        note = ""
        if deadline is not None:
            if rectified is not None:
                note = f"；已于 {rectified.isoformat()} 整改（期限 {deadline.isoformat()}）"
            elif late:
                note = f"；整改期限 {deadline.isoformat()} 已过仍未整改，扣分加倍"
            else:
                note = f"；整改期限 {deadline.isoformat()}"
        self.add(
            f"INSPECTION:{f.id}",
            "INSPECTION",
            rule.clause,
            f.severity,
            deduction,
            f.project_code,
            day,
            True,
            Source.REVIEWER,
            rule.message.format(
                subject=subject,
                date=f.inspected_on.isoformat(),
                inspection_id=f.inspection_id,
                severity_label=SEVERITY_LABEL[f.severity],
                description=f.description,
                rectification=note,
            ),
            evidence
            | {
                "rectification_deadline": None if deadline is None else deadline.isoformat(),
                "rectified_on": None if rectified is None else rectified.isoformat(),
                "unrectified_after_deadline": late,
            },
        )

    def post_evaluation(self, e: PostEvaluation, subject: str) -> None:
        if e.verdict is Verdict.PASS:
            return
        rule = self.rb.rules.POST_EVALUATION
        fail = e.verdict is Verdict.FAIL
        self.add(
            f"POST_EVALUATION:{e.id}",
            "POST_EVALUATION",
            rule.clause,
            Severity.MAJOR if fail else Severity.MINOR,
            rule.fail if fail else rule.conditional,
            e.project_code,
            (e.evaluated_on, e.evaluated_on),
            True,
            Source.REVIEWER,
            rule.message.format(
                subject=subject,
                date=e.evaluated_on.isoformat(),
                evaluation_id=e.id,
                verdict_label=VERDICT_LABEL[e.verdict],
                summary=e.summary,
            ),
            {
                "post_evaluation_id": e.id,
                "evaluated_on": e.evaluated_on.isoformat(),
                "verdict": e.verdict.value,
            },
        )


def _quality_text(e: dict[str, Any]) -> str:
    unit = " mg/L" if e["parameter"] == "TDS" else ""
    bound = f"上限 {e['max']:g}{unit}" if "max" in e else f"下限 {e['min']:g}"
    return f"{e['aquifer']} 层 {e['parameter']} 月均 {e['mean']:g}{unit}（{bound}）"


def report_index(reports: Sequence[MonthlyReport]) -> dict[str, dict[date, date]]:
    """Earliest submission per project and month."""
    index: dict[str, dict[date, date]] = {}
    for r in reports:
        month = r.month if r.month.day == 1 else r.month.replace(day=1)
        by_month = index.get(r.project_code)
        if by_month is None:
            by_month = index[r.project_code] = {}
        known = by_month.get(month)
        if known is None or r.submitted_on < known:
            by_month[month] = r.submitted_on
    return index
