"""Deterministic generator: companies, projects, wells (Things), datastreams and observations.

Everything is made up front from the seed. Observations are kept columnar (``array`` module),
ordered as the platform's global feed: by (resultTime, @iot.id).
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from array import array
from dataclasses import dataclass, field
from datetime import date, timedelta

from .config import SLOT, Config, epoch
from .creditcode import make_code

# city -> (admin division code, heating season start (month, day), end (month, day)); docs/domain.md
CITIES = {
    "太原": ("140100", (11, 1), (3, 31)),
    "大同": ("140200", (11, 15), (3, 15)),
    "阳泉": ("140300", (11, 15), (3, 15)),
    "长治": ("140400", (11, 15), (3, 15)),
    "晋城": ("140500", (11, 15), (3, 15)),
    "朔州": ("140600", (11, 15), (3, 15)),
    "晋中": ("140700", (11, 15), (3, 15)),
    "运城": ("140800", (11, 15), (3, 15)),
    "忻州": ("140900", (11, 15), (3, 15)),
    "临汾": ("141000", (11, 15), (3, 15)),
    "吕梁": ("141100", (11, 15), (3, 15)),
}

PROPERTIES = (  # ObservedProperty @iot.id = index + 1
    ("extraction_volume", "开采量 extraction volume"),
    ("reinjection_volume", "回灌量 reinjection volume"),
    ("water_level", "水位埋深 depth to water below ground"),
    ("water_temperature", "水温 water temperature"),
    ("water_quality_tds", "溶解性总固体 total dissolved solids"),
    ("water_quality_ph", "pH of reinjected water"),
)
PROPERTY_ID = {name: i + 1 for i, (name, _) in enumerate(PROPERTIES)}
UNITS = {
    "m3": ("cubic metre", "http://qudt.org/vocab/unit/M3"),
    "L": ("litre", "http://qudt.org/vocab/unit/L"),
    "m": ("metre", "http://qudt.org/vocab/unit/M"),
    "degC": ("degree Celsius", "http://qudt.org/vocab/unit/DEG_C"),
    "mg/L": ("milligram per litre", "http://qudt.org/vocab/unit/MilliGM-PER-L"),
    "pH": ("pH", "http://qudt.org/vocab/unit/PH"),
}
REASONS = ("not_a_number", "negative_value", "out_of_range", "future_time")
# label byte per observation: 0 good; 1-3 not_a_number written as null / "NaN" / "n/a";
# 4 negative_value; 5 out_of_range; 6 future_time; 7-8 poison rows (below)
LABEL_REASON = (
    None, *(["not_a_number"] * 3), "negative_value", "out_of_range", "future_time",
    "out_of_range", "early_time",
)  # fmt: skip
NAN_TOKENS = {1: "null", 2: '"NaN"', 3: '"n/a"'}
# poison rows (data faults huge_integer, year_one): 7 result 10**400 as a JSON integer;
# 8 phenomenonTime 0001-01-01
POISON_REASONS = ("early_time",)  # in /truth's totals only when some row has it
RESULT_TOKENS = {**NAN_TOKENS, 7: "1" + "0" * 400}
YEAR_ONE = -62_135_596_800  # 0001-01-01T00:00:00Z, epoch seconds
NAN = float("nan")

ROLES = (
    "compliant",
    "low_reinjection_80",
    "metering_gaps",
    "no_reinjection",
    "closed_loop",
    "direct_use",
    "cumulative_meters",
)


@dataclass
class ProjectSpec:
    type: str
    e: int = 0  # extraction wells
    r: int = 0  # reinjection wells
    m: int = 0  # monitoring wells
    ratio: float | None = None  # target reinjection / extraction
    # litres: all volumes in L; litres_one: the first extraction and reinjection well's volumes
    # in L; litres_extraction: extraction volumes in L; cumulative: volumes are meter readings;
    # meter_reset: well E01's meter restarts from zero at 60% of the span; artesian: the first
    # monitoring well's water stands above ground (negative depth); gaps: extraction wells miss
    # about gap_fraction of their slots, in runs of 1-6 h; off_season: 3-8% of the heating-season
    # flow outside it (otherwise 0)
    features: tuple[str, ...] = ()
    operating: bool = True


# The fixed roster every scenario starts with: (role, city, projects, files its monthly
# operating reports). The reports go to the task force, not the platform: the demo records
# them for the companies that file them (so those can reach 100), /scenario says which.
ROSTER: list[tuple[str, str, list[ProjectSpec], bool]] = [
    ("compliant", "太原", [ProjectSpec("MEDIUM_DEEP", 2, 3, 1, 1.0)], True),
    ("low_reinjection_80", "运城", [ProjectSpec("MEDIUM_DEEP", 2, 2, 0, 0.8)], False),
    (
        "metering_gaps",
        "大同",
        [ProjectSpec("SHALLOW_WATER_SOURCE", 3, 3, 0, 0.97, ("gaps",))],
        False,
    ),
    ("no_reinjection", "临汾", [ProjectSpec("SHALLOW_WATER_SOURCE", 2, 2, 0, 0.0)], False),
    (
        "closed_loop",
        "晋中",
        [ProjectSpec("CLOSED_LOOP", m=3), ProjectSpec("CLOSED_LOOP", m=2)],
        True,
    ),
    ("direct_use", "忻州", [ProjectSpec("DIRECT_USE", 2)], False),
    (
        "cumulative_meters",
        "太原",
        [ProjectSpec("MEDIUM_DEEP", 2, 2, 0, 1.0, ("cumulative", "meter_reset", "litres_one"))],
        True,
    ),
    (
        "compliant",
        "长治",
        [ProjectSpec("SHALLOW_WATER_SOURCE", 2, 3, 0, 0.98, ("litres_extraction",))],
        False,
    ),
    (
        "compliant",
        "晋城",
        [
            ProjectSpec("MEDIUM_DEEP", 1, 2, 1, 1.0, ("artesian", "off_season")),
            ProjectSpec("CLOSED_LOOP", m=2),
            ProjectSpec("MEDIUM_DEEP", 1, 1, 0, 1.0, operating=False),
        ],
        True,
    ),
]
# Extra companies (when --wells asks for more than the roster): role weights.
GENERIC_ROLES = (
    ("compliant", 70),
    ("low_reinjection_80", 8),
    ("metering_gaps", 8),
    ("no_reinjection", 3),
    ("closed_loop", 5),
    ("direct_use", 3),
    ("cumulative_meters", 3),
)

_MID_TEXT = (
    "晋阳汾河龙城并州河东盐湖云冈御河平阳尧都五台奇村太行上党丹河榆次介休吕梁沁水恒山桑干中条晋源古城新源"
    "华晟恒泰鑫源瑞丰宏达正泰天润汇能晋能绿源清泉地源禹门黄河绵山雁门管涔芦芽析城王屋霍山姑射舜都解州稷山"
)
_MIDS = [_MID_TEXT[i : i + 2] for i in range(0, len(_MID_TEXT), 2)]  # place and brand words
_BIZ = {
    "MEDIUM_DEEP": ("地热能开发", "地热供暖", "清洁能源", "热力", "新能源科技", "能源投资"),
    "SHALLOW_WATER_SOURCE": ("热泵供暖", "水源热泵", "节能科技", "供热"),
    "CLOSED_LOOP": ("地源热泵", "浅层地热能", "暖通工程"),
    "DIRECT_USE": ("温泉旅游", "温泉度假", "康养旅游"),
}
_SUFFIX = ("有限公司", "有限责任公司", "股份有限公司")
# Project names: a district of the city, the neighbourhood heated and what the project does.
_NEIGHBOURHOODS = (
    "新城", "东苑", "南湖", "西山", "北营", "河畔", "滨河", "文苑", "康宁", "阳光", "锦绣",
    "和平", "朝阳", "春晖", "龙湖", "汾东", "学府", "长风", "金桥", "翠园", "望景", "丰泽",
)  # fmt: skip
_DISTRICTS = {
    "太原": ("小店区", "晋源区", "万柏林区", "尖草坪区"),
    "大同": ("平城区", "云冈区", "云州区"),
    "阳泉": ("城区", "郊区", "平定县"),
    "长治": ("潞州区", "上党区", "屯留区"),
    "晋城": ("城区", "泽州县", "高平市"),
    "朔州": ("朔城区", "平鲁区", "怀仁市"),
    "晋中": ("榆次区", "太谷区", "介休市"),
    "运城": ("盐湖区", "永济市", "河津市"),
    "忻州": ("忻府区", "定襄县", "原平市"),
    "临汾": ("尧都区", "侯马市", "霍州市"),
    "吕梁": ("离石区", "孝义市", "汾阳市"),
}
_PROJECT_KIND = {
    "MEDIUM_DEEP": "中深层地热供暖项目",
    "SHALLOW_WATER_SOURCE": "水源热泵供暖项目",
    "CLOSED_LOOP": "地埋管地源热泵项目",
    "DIRECT_USE": "温泉康养项目",
}
_AQUIFER = {
    "MEDIUM_DEEP": ("O2", "N2", "Є-O"),
    "SHALLOW_WATER_SOURCE": ("Q3", "Q4"),
    "DIRECT_USE": ("O2", "Ar"),
    "CLOSED_LOOP": ("Q4", "N2"),
}


@dataclass
class Datastream:
    id: int
    well: Well
    prop: str
    unit: str
    accumulation: str | None = None  # volumes only: interval | cumulative

    @property
    def scale(self) -> float:  # canonical = value * scale
        return 0.001 if self.unit == "L" else 1.0

    @property
    def is_volume(self) -> bool:
        return self.prop.endswith("_volume")


@dataclass
class Well:
    thing_id: int
    code: str
    role: str
    aquifer: str
    project: Project
    datastreams: list[Datastream] = field(default_factory=list)
    artesian: bool = False


@dataclass
class Project:
    code: str
    type: str
    city: str
    operating: bool
    company: Company
    spec: ProjectSpec
    aquifer: str
    name: str = ""
    wells: list[Well] = field(default_factory=list)


@dataclass
class Company:
    credit_code: str
    name: str
    city: str
    role: str
    files_reports: bool = False  # files its monthly operating reports with the task force
    projects: list[Project] = field(default_factory=list)


def _project_name(rnd: random.Random, city: str, ptype: str, taken: set[str]) -> str:
    """E.g. 小店区龙城中深层地热供暖项目; unique within the world (a later phase is 二期, 三期…)."""
    base = rnd.choice(_DISTRICTS[city]) + rnd.choice(_NEIGHBOURHOODS) + _PROJECT_KIND[ptype]
    name, phase = base, 1
    while name in taken:
        phase += 1
        name = base.removesuffix("项目") + _phase(phase) + "项目"
    taken.add(name)
    return name


def _phase(n: int) -> str:
    digits = "〇一二三四五六七八九"
    return (digits[n] if n < 10 else str(n)) + "期"


class Changes:
    """The config's registry changes mid-season: from each change's time on, its project's or
    well's `operating` flag and its project's type are the new ones, and a well that is not
    operating sends nothing (a slot counts as of its start)."""

    def __init__(self, world: World):
        self.t0 = world.t0
        wells = {w.code: w for w in world.wells}
        projects = {w.project.code: w.project for w in world.wells}
        self.events: list[tuple[int, list[Well], dict]] = []
        for ch in sorted(world.config.registry_changes, key=lambda ch: ch["at"]):
            if "well" in ch:
                if ch["well"] not in wells:
                    raise ValueError(f"registry change of an unknown well {ch['well']!r}")
                targets = [wells[ch["well"]]]
            else:
                if ch["project"] not in projects:
                    raise ValueError(f"registry change of an unknown project {ch['project']!r}")
                targets = projects[ch["project"]].wells
            values = {k: ch[k] for k in ("operating", "projectType") if k in ch}
            self.events.append((epoch(ch["at"]), targets, values))

    def applied(self, t: float) -> int:
        """How many changes have happened by time t."""
        return sum(1 for at, _, _ in self.events if at <= t)

    def state(self, well: Well, applied: int) -> tuple[bool, str]:
        """(operating, project type) of a well after the first `applied` changes."""
        operating, ptype = well.project.operating, well.project.type
        for _, targets, values in self.events[:applied]:
            if any(w is well for w in targets):
                operating = values.get("operating", operating)
            if "projectType" in values and any(w.project is well.project for w in targets):
                ptype = values["projectType"]
        return operating, ptype

    def touches(self, project: Project) -> bool:
        return any(w.project is project for _, targets, _ in self.events for w in targets)

    def off_slots(self, well: Well, slots: int) -> set[int] | None:
        """Slots in which the well is not operating, or None when it always is."""
        if not self.events:
            return None if well.project.operating else set(range(slots))
        off: set[int] = set()
        applied, times = 0, [at for at, _, _ in self.events]
        for s in range(slots):
            start = self.t0 + s * SLOT
            while applied < len(times) and times[applied] <= start:
                applied += 1
            if not self.state(well, applied)[0]:
                off.add(s)
        return off or None


class World:
    """Entities plus the observation feed as parallel arrays in feed order."""

    def __init__(self, config: Config):
        self.config = c = config.resolved()
        self.rnd = random.Random(c.seed)
        self.t0 = epoch(c.start)
        self.slots = max(1, (epoch(c.end) - self.t0) // SLOT)
        self.outage = self._outage_slots()
        self.companies: list[Company] = []
        self.wells: list[Well] = []
        self.datastreams: dict[int, Datastream] = {}
        self.injected = dict.fromkeys((*c.data_faults, "outage_rows", "gap_rows"), 0)
        self.injected.update(dict.fromkeys(c.meter_faults, 0))
        # cumulative meters: the true volume of each slot (m3), and the faults injected as
        # (kind, datastream id, first slot, slots)
        self.true_steps: dict[int, list[float]] = {}
        self.meter_events: list[tuple[str, int, int, int]] = []
        self.silenced: set[tuple[int, int]] = set()  # (datastream id, phenomenonTime): not sent
        self._build_entities()
        self.changes = Changes(self)
        self._generate()

    # ---- entities -------------------------------------------------------------------------
    def _outage_slots(self) -> range:
        c = self.config
        if not c.outage_hours or c.outage_start is None:
            return range(0)
        first = -(-(epoch(c.outage_start) - self.t0) // SLOT)  # first slot starting in the window
        n = round(c.outage_hours * 3600 / SLOT)
        return range(max(first, 0), max(min(first + n, self.slots), 0))

    def _build_entities(self) -> None:
        c, rnd = self.config, self.rnd
        specs = list(ROSTER)
        wells = sum(s.e + s.r + s.m for _, _, ps, _ in specs for s in ps)
        roles, weights = zip(*GENERIC_ROLES, strict=True)
        cities = list(CITIES)
        while wells < c.wells:
            role = rnd.choices(roles, weights)[0]
            ps = self._generic_projects(role)
            specs.append((role, rnd.choice(cities), ps, False))
            wells += sum(s.e + s.r + s.m for s in ps)
        names: set[str] = set()
        codes: set[str] = set()
        # Names from a generator of their own: every other draw stays what it was before
        # projects had names.
        naming = random.Random(f"{c.seed}:project-names")
        project_names: set[str] = set()
        project_no = 0
        for role, city, project_specs, files_reports in specs:
            division = CITIES[city][0]
            code = make_code(rnd, division)
            while code in codes:
                code = make_code(rnd, division)
            codes.add(code)
            name = self._company_name(city, project_specs[0].type, names)
            company = Company(code, name, city, role, files_reports)
            self.companies.append(company)
            for spec in project_specs:
                project_no += 1
                year = rnd.choice((2019, 2021, 2023, 2024, 2025))
                pcode = f"SX{division}-{year}-{project_no:04d}"
                aquifer = rnd.choice(_AQUIFER[spec.type])
                project = Project(pcode, spec.type, city, spec.operating, company, spec, aquifer)
                project.name = _project_name(naming, city, spec.type, project_names)
                company.projects.append(project)
                for role_letter, count in (("E", spec.e), ("R", spec.r), ("M", spec.m)):
                    for i in range(count):
                        self._add_well(project, role_letter, i)

    def _generic_projects(self, role: str) -> list[ProjectSpec]:
        rnd = self.rnd
        ri = rnd.randint
        feats: list[str] = []
        if rnd.random() < 0.15:
            feats.append("litres")
        if rnd.random() < 0.1:
            feats.append("cumulative")
        if role == "closed_loop":
            return [ProjectSpec("CLOSED_LOOP", m=ri(2, 4)) for _ in range(ri(1, 2))]
        if role == "direct_use":
            return [ProjectSpec("DIRECT_USE", ri(1, 2), features=tuple(feats))]
        if role == "cumulative_meters":
            feats = ["cumulative", "meter_reset"]
        if role == "metering_gaps":
            feats.append("gaps")
        if rnd.random() < 0.5:
            kind, ratio = "MEDIUM_DEEP", 1.0
            spec = ProjectSpec(kind, ri(1, 2), ri(1, 3), ri(0, 1), ratio, tuple(feats))
        else:
            kind, ratio = "SHALLOW_WATER_SOURCE", round(rnd.uniform(0.96, 1.0), 3)
            spec = ProjectSpec(kind, ri(2, 3), ri(2, 3), 0, ratio, tuple(feats))
        spec.ratio = {"low_reinjection_80": 0.8, "no_reinjection": 0.0}.get(role, spec.ratio)
        projects = [spec]
        if role == "compliant" and rnd.random() < 0.2:
            projects.append(ProjectSpec("CLOSED_LOOP", m=ri(1, 3)))
        return projects

    def _company_name(self, city: str, ptype: str, taken: set[str]) -> str:
        rnd = self.rnd
        while True:
            prefix = rnd.choice((f"{city}市", f"{city}市", "山西"))
            name = prefix + rnd.choice(_MIDS) + rnd.choice(_BIZ[ptype]) + rnd.choice(_SUFFIX)
            if name not in taken:
                taken.add(name)
                return name

    def _add_well(self, project: Project, letter: str, i: int) -> None:
        spec = project.spec
        role = {"E": "EXTRACTION", "R": "REINJECTION", "M": "MONITORING"}[letter]
        well = Well(
            thing_id=101 + len(self.wells),
            code=f"{project.code}-{letter}{i + 1:02d}",
            role=role,
            aquifer=project.aquifer,
            project=project,
            artesian=role == "MONITORING" and i == 0 and "artesian" in spec.features,
        )
        project.wells.append(well)
        self.wells.append(well)
        feats = spec.features
        litres = (
            "litres" in feats
            or ("litres_one" in feats and i == 0)
            or ("litres_extraction" in feats and role == "EXTRACTION")
        )
        vol_unit = "L" if litres else "m3"
        accumulation = "cumulative" if "cumulative" in spec.features else "interval"
        if role == "EXTRACTION":
            props = [("extraction_volume", vol_unit), ("water_level", "m")]
            props.append(("water_temperature", "degC"))
        elif role == "REINJECTION":
            props = [("reinjection_volume", vol_unit), ("water_quality_tds", "mg/L")]
            props.append(("water_quality_ph", "pH"))
        elif project.type == "CLOSED_LOOP":
            props = [("water_temperature", "degC")] + ([("water_level", "m")] if i == 0 else [])
        else:
            props = [("water_level", "m")]
        for prop, unit in props:
            ds_id = 10_001 + len(self.datastreams)
            acc = accumulation if prop.endswith("_volume") else None
            ds = Datastream(ds_id, well, prop, unit, acc)
            well.datastreams.append(ds)
            self.datastreams[ds_id] = ds

    # ---- series -----------------------------------------------------------------------------
    def _slot_tables(self) -> None:
        """Per slot: local slot-of-day and local date index (for seasons and daily shapes)."""
        starts = [self.t0 + s * SLOT + 8 * 3600 for s in range(self.slots)]  # local clock
        self.sod = [(t % 86400) // SLOT for t in starts]
        self.day0 = starts[0] // 86400
        self.dayidx = [t // 86400 - self.day0 for t in starts]
        self._factor_cache: dict[tuple, list[float]] = {}

    def _factors(self, city: str, ptype: str, off_season: float) -> list[float]:
        """Demand factor per slot: heating season x time of day (bathing for direct use)."""
        key = (city, ptype, off_season)
        if key not in self._factor_cache:
            _, (m1, d1), (m2, d2) = CITIES[city]
            ndays = self.dayidx[-1] + 1
            season = []
            for k in range(ndays):
                d = date(1970, 1, 1) + timedelta(days=self.day0 + k)
                md = (d.month, d.day)
                season.append(1.0 if md >= (m1, d1) or md <= (m2, d2) else off_season)
            if ptype == "DIRECT_USE":  # open 08:00-23:00, peak in the evening, all year
                shape = [
                    (0.05 if h < 8 else 0.6 + 0.4 * math.sin(math.pi * (h - 8) / 15))
                    for h in (q / 4 for q in range(96))
                ]
                season = [1.0] * ndays
            else:  # heating: more at night
                shape = [1.0 + 0.2 * math.cos(2 * math.pi * (q / 4 - 4) / 24) for q in range(96)]
            self._factor_cache[key] = [
                season[di] * shape[q] for di, q in zip(self.dayidx, self.sod, strict=True)
            ]
        return self._factor_cache[key]

    def _series(self, project: Project) -> dict[int, list[float]]:
        """Values per datastream id, one per slot, in the datastream's own unit."""
        rnd, spec, ptype = self.rnd, project.spec, project.type
        uni, rand = rnd.uniform, rnd.random
        out: dict[int, list[float]] = {}
        off = rnd.uniform(0.03, 0.08) if "off_season" in spec.features else 0.0
        f = self._factors(project.city, ptype, off)
        lo, hi = {"MEDIUM_DEEP": (40, 80), "SHALLOW_WATER_SOURCE": (20, 40)}.get(ptype, (5, 20))
        ext_wells = [w for w in project.wells if w.role == "EXTRACTION"]
        rein_wells = [w for w in project.wells if w.role == "REINJECTION"]
        extraction = []
        for w in ext_wells:
            rate = uni(lo, hi)
            vol = [rate * fs * (0.92 + 0.16 * rand()) for fs in f]
            extraction.append(vol)
            depth = {"MEDIUM_DEEP": uni(40, 150), "SHALLOW_WATER_SOURCE": uni(5, 30)}.get(
                ptype, uni(10, 60)
            )
            draw = uni(2, 8) / rate
            temp = {"MEDIUM_DEEP": uni(55, 90), "SHALLOW_WATER_SOURCE": uni(12, 18)}.get(
                ptype, uni(42, 68)
            )
            for ds in w.datastreams:
                if ds.prop == "extraction_volume":
                    out[ds.id] = self._volume(ds, vol, spec)
                elif ds.prop == "water_level":
                    out[ds.id] = [
                        round((depth + draw * v + 0.05 * rand()) * 100) / 100 for v in vol
                    ]
                else:
                    out[ds.id] = [
                        round((temp - (0 if v else 4) + 0.2 * rand()) * 10) / 10 for v in vol
                    ]
        total = [sum(vs) for vs in zip(*extraction, strict=True)] if extraction else []
        shares = [uni(0.7, 1.3) for _ in rein_wells]
        ratio = spec.ratio or 0.0
        for w, share in zip(rein_wells, shares, strict=True):
            part = ratio * share / sum(shares)
            vol = [e * part * (0.98 + 0.04 * rand()) for e in total]
            tds, ph = uni(600, 2500), uni(6.9, 8.1)
            for ds in w.datastreams:
                if ds.prop == "reinjection_volume":
                    out[ds.id] = self._volume(ds, vol, spec)
                elif ds.prop == "water_quality_tds":
                    out[ds.id] = [float(round(tds * (0.99 + 0.02 * rand()))) for _ in f]
                else:
                    out[ds.id] = [round((ph - 0.03 + 0.06 * rand()) * 100) / 100 for _ in f]
        heat = self._factors(project.city, "MEDIUM_DEEP", 0.0)
        for w in project.wells:
            if w.role != "MONITORING":
                continue
            depth, temp = uni(8, 60), uni(12, 18)
            for ds in w.datastreams:
                if ds.prop == "water_temperature":  # closed-loop borehole fluid
                    out[ds.id] = [round((temp - 4 * h + 0.3 * rand()) * 10) / 10 for h in heat]
                elif w.artesian:  # water stands above ground: negative depth
                    out[ds.id] = [round((-1.8 + 0.3 * rand()) * 100) / 100 for _ in f]
                else:
                    out[ds.id] = [
                        round((depth + 0.6 * h + 0.05 * rand()) * 100) / 100 for h in heat
                    ]
        return out

    def _volume(self, ds: Datastream, vol: list[float], spec: ProjectSpec) -> list[float]:
        """Interval volumes in m3 -> this datastream's values (interval or meter reading, m3 or L)."""
        if ds.accumulation == "cumulative":
            reading = round(self.rnd.uniform(1e4, 9e5), 3)
            meter = _MeterFaults(self, ds)
            resets = meter.resets()  # slot -> the new meter's starting level, m3
            if "meter_reset" in spec.features and ds.well.code.endswith("-E01"):
                resets[self.slots * 3 // 5] = 0.0  # the meter is replaced: restarts from zero
            values = []
            for s, v in enumerate(vol):
                reading = round((resets.get(s, reading) + v) * 1000) / 1000
                values.append(reading)
        else:
            values = vol
        if ds.unit == "L":
            values = [float(round(v * 1000)) for v in values]
        else:
            values = [round(v * 1000) / 1000 for v in values]
        if ds.accumulation == "cumulative":
            return meter.apply(values, resets)
        return values

    # ---- observations ----------------------------------------------------------------------
    def _generate(self) -> None:
        """Normal rows go straight into feed-ordered arrays; anomalies are sorted and merged in.

        Slots are walked in time order and, within a slot, wells in order of their delay
        (3-258 s, shared by a well's datastreams: one transmission), so normal rows come out
        sorted by resultTime. Faulty, late, skewed and back-filled rows go to ``extra``.
        """
        c, rnd = self.config, self.rnd
        injected, outage, randbytes = self.injected, self.outage, rnd.randbytes
        self._slot_tables()
        streams: list[tuple] = []  # per active well: (ds ids, values per slot, kinds, scales)
        missing: list[set[int] | None] = []
        off_slots: list[set[int] | None] = []  # not operating (registry changes)
        changes = self.changes
        for company in self.companies:
            for project in company.projects:
                if not project.operating and not changes.touches(project):
                    continue
                series = self._series(project)
                for w in project.wells:
                    dss = w.datastreams
                    streams.append(
                        (
                            tuple(ds.id for ds in dss),
                            list(zip(*(series[ds.id] for ds in dss), strict=True)),
                            [_kind(ds) for ds in dss],
                            [round(1 / ds.scale) for ds in dss],
                        )
                    )
                    gappy = "gaps" in project.spec.features and w.role == "EXTRACTION"
                    missing.append(self._gap_slots() if gappy else None)
                    off_slots.append(changes.off_slots(w, self.slots) if changes.events else None)
        rates = c.data_faults
        kinds = [k for k in rates if rates[k] > 0]
        edges = list(itertools.accumulate(rates[k] for k in kinds))
        p_any = edges[-1] if edges else 0.0
        # the outage: the platform receives nothing with a resultTime in (lo, hi]; what was
        # measured or in flight then is lost, or re-sent `outage_backfill_hours` after it
        self._window = (self.t0 + outage.start * SLOT, self.t0 + outage.stop * SLOT)
        backfill = None
        if c.outage_backfill_hours is not None and outage:
            backfill = self._window[1] + round(c.outage_backfill_hours * 3600)
        self._backfill = backfill
        w_lo, w_hi = self._window
        RT: list[int] = []  # lists while building (faster to extend), arrays when done
        DS: list[int] = []
        PT: list[int] = []
        VAL: list[float] = []
        self._extra: list[tuple[int, int, int, float, int]] = []

        def next_fault() -> int:  # rows until the next faulty one (geometric)
            return int(rnd.expovariate(p_any)) if p_any > 0 else 1 << 62

        countdown = next_fault()
        nwells = len(streams)
        for s in range(self.slots):
            pt = self.t0 + (s + 1) * SLOT
            delays = randbytes(nwells)
            in_outage = s in outage
            for wi in sorted(range(nwells), key=delays.__getitem__):
                ds_ids, values, kinds_, scales = streams[wi]
                k = len(ds_ids)
                off = off_slots[wi]
                if off is not None and s in off:
                    injected["off_rows"] = injected.get("off_rows", 0) + k
                    continue
                gaps = missing[wi]
                if gaps is not None and s in gaps:
                    injected["gap_rows"] += k
                    continue
                rt = pt + 3 + delays[wi]
                if in_outage:
                    injected["outage_rows"] += k
                    if backfill is not None:  # re-sent in one go, without faults
                        for j in range(k):
                            self._emit(backfill + delays[wi], ds_ids[j], pt, values[s][j])
                    continue
                if countdown >= k and not w_lo < rt <= w_hi:
                    countdown -= k
                    RT.extend((rt,) * k)
                    PT.extend((pt,) * k)
                    DS.extend(ds_ids)
                    VAL.extend(values[s])
                    continue
                for j in range(k):  # slow path: one row at a time, into extra
                    v = values[s][j]
                    if countdown:
                        countdown -= 1
                        self._emit(rt, ds_ids[j], pt, v)
                        continue
                    countdown = next_fault()
                    x = rnd.random() * p_any
                    fault = next(f for f, e in zip(kinds, edges, strict=True) if x < e)
                    self._fault(fault, rt, ds_ids[j], pt, v, kinds_[j], scales[j])
        self._finish(RT, DS, PT, VAL)

    def _gap_slots(self) -> set[int]:
        """Runs of 1-6 hours without data, about gap_fraction of all slots."""
        gaps: set[int] = set()
        want = self.config.gap_fraction * self.slots
        while len(gaps) < want:
            start = self.rnd.randrange(self.slots)
            gaps.update(range(start, min(start + self.rnd.randint(4, 24), self.slots)))
        return gaps

    def _emit(self, rt: int, ds_id: int, pt: int, value: float, label: int = 0) -> None:
        lo, hi = self._window
        if lo < rt <= hi:  # the platform is down
            if self._backfill is None:
                return
            rt = self._backfill + rt % 251
        if label == 6 and lo < pt <= hi:
            return  # keep the outage free of any phenomenonTime, even a bad one
        self._extra.append((rt, ds_id, pt, value, label))

    def _fault(self, fault: str, rt: int, ds: int, pt: int, v: float, kind: str, scale: int):
        rnd, emit = self.rnd, self._emit
        later = rt + rnd.randint(600, 86400)
        if (fault == "negative" and not kind.startswith("vol")) or (
            fault == "correction" and kind.startswith("vol") and not v
        ):  # no negative levels or temperatures; no "wrong" volume where nothing flowed
            fault = "none"
        elif fault == "bad_correction":
            emit(rt, ds, pt, v)
            label, bad = self._bad_value(v, kind, scale)
            emit(later, ds, pt, bad, label)
        elif fault in ("not_a_number", "negative", "out_of_range"):
            label, bad = self._bad_value(v, kind, scale, fault)
            emit(rt, ds, pt, bad, label)
            if rnd.random() < 0.5:
                emit(later, ds, pt, v)
        elif fault == "late":
            emit(pt + rnd.randint(86400, 5 * 86400), ds, pt, v)
        elif fault == "duplicate":
            emit(rt, ds, pt, v)
            emit(rt + rnd.randint(60, 6 * 3600), ds, pt, v)
        elif fault == "correction":
            emit(rt, ds, pt, self._wrong_value(v, kind, scale))
            emit(rt + rnd.randint(600, 2 * 86400), ds, pt, v)
        elif fault == "future_time":
            emit(rt, ds, pt, v)
            emit(rt, ds, pt + rnd.randint(1, 2) * 86400, v, 6)
        elif fault == "clock_skew":
            emit(pt - rnd.randint(60, 600), ds, pt, v)
        elif fault == "huge_integer":
            emit(rt, ds, pt, v)
            emit(rt, ds, pt, NAN, 7)
        elif fault == "year_one":
            emit(rt, ds, pt, v)
            emit(rt, ds, YEAR_ONE, v, 8)
        if fault == "none":
            emit(rt, ds, pt, v)
        else:
            self.injected[fault] += 1

    def _wrong_value(self, v: float, kind: str, scale: int) -> float:
        """A plausible, good, but different value (what a correction later fixes)."""
        u = self.rnd.uniform
        if kind == "vol_interval":
            return _round(v + max(abs(v) * u(0.05, 0.3), 0.5 * scale), scale)
        if kind == "vol_cumulative":
            return _round(v + u(5, 50) * scale, scale)
        step, nd = {"level": (2.0, 2), "temp": (3.0, 1), "tds": (200.0, 0), "ph": (0.5, 2)}[kind]
        return round(v + u(0.2, 1) * step, nd)

    def _bad_value(self, v: float, kind: str, scale: int, fault: str = "") -> tuple[int, float]:
        rnd = self.rnd
        if not fault:
            choices = ["not_a_number", "out_of_range"]
            fault = rnd.choice([*choices, "negative"] if kind.startswith("vol") else choices)
        if fault == "not_a_number":
            return rnd.randint(1, 3), NAN
        if fault == "negative":
            return 4, -_round(abs(v) + rnd.uniform(0.5, 20) * scale, scale)
        huge = {
            "vol_interval": 5e5 * scale,  # > 10,000 m3 per observation
            "vol_cumulative": 5e10 * scale,  # > 1e10 m3
            "level": rnd.choice((5000.0, -500.0)),
            "temp": 999.9,
            "tds": 250000.0,
            "ph": 15.5,
        }[kind]
        return 5, round(huge * (1 + rnd.random()), 1) if kind.startswith("vol") else huge

    def _finish(self, RT: list, DS: list, PT: list, VAL: list) -> None:
        """Merge the sorted extra rows into the normal ones; assign @iot.id."""
        extra = sorted(self._extra, key=lambda row: row[0])  # stable
        del self._extra
        if self.silenced:  # rows of silent meters were made (for the same world) but never sent
            quiet = self.silenced
            keep = [i for i, key in enumerate(zip(DS, PT, strict=True)) if key not in quiet]
            RT, DS, PT, VAL = ([col[i] for i in keep] for col in (RT, DS, PT, VAL))
            extra = [row for row in extra if (row[1], row[2]) not in quiet]
        rt: list[int] = []
        ds: list[int] = []
        pt: list[int] = []
        val: list[float] = []
        marks: list[tuple[int, int]] = []  # (final position, label) of extra rows that are bad
        prev = 0
        for j, (e_rt, e_ds, e_pt, e_val, e_lab) in enumerate(extra):
            pos = bisect.bisect_right(RT, e_rt, prev)
            if pos > prev:
                rt.extend(RT[prev:pos])
                ds.extend(DS[prev:pos])
                pt.extend(PT[prev:pos])
                val.extend(VAL[prev:pos])
                prev = pos
            rt.append(e_rt)
            ds.append(e_ds)
            pt.append(e_pt)
            val.append(e_val)
            if e_lab:
                marks.append((pos + j, e_lab))
        rt.extend(RT[prev:])
        ds.extend(DS[prev:])
        pt.extend(PT[prev:])
        val.extend(VAL[prev:])
        del RT[:], DS[:], PT[:], VAL[:]
        self.rt, self.ds, self.pt = array("q", rt), array("q", ds), array("q", pt)
        self.val = array("d", val)
        del rt[:], ds[:], pt[:], val[:]
        rt = self.rt
        n = len(rt)
        label = bytearray(n)
        for pos, lab in marks:
            label[pos] = lab
        self.label = bytes(label)
        self.nan_rows = [pos for pos, lab in marks if lab in RESULT_TOKENS]  # ascending
        # @iot.id: increasing, not dense; ~0.5% of neighbours across a resultTime step get their
        # ids swapped, so id order alone is not feed order (as on a platform with parallel writers)
        self.ids = ids = array("q", range(1000, 1000 + 2 * n, 2))
        last = -2
        for k in sorted(self.rnd.sample(range(n - 1), (n - 1) // 200)) if n > 1 else ():
            if k > last + 1 and rt[k] < rt[k + 1]:
                ids[k], ids[k + 1] = ids[k + 1], ids[k]
                last = k
        self.last_rt = rt[-1] if n else self.t0

    def __len__(self) -> int:
        return len(self.rt)


class _MeterFaults:
    """The faults of one cumulative meter (config.METER_FAULT_KINDS), drawn from a generator of
    its own so that the rest of the world is the same with or without them."""

    def __init__(self, world: World, ds: Datastream):
        self.world, self.ds = world, ds
        self.rates = {k: r for k, r in world.config.meter_faults.items() if r > 0}
        self.rnd = random.Random(f"{world.config.seed}:meter:{ds.id}")
        self.kinds = list(self.rates)
        self.edges = list(itertools.accumulate(self.rates[k] for k in self.kinds))
        self.plan: dict[int, str] = {}  # slot -> fault starting there
        slot = 1
        while self.rates and slot < world.slots:
            x = self.rnd.random()
            kind = next((k for k, e in zip(self.kinds, self.edges, strict=True) if x < e), None)
            if kind is not None:
                self.plan[slot] = kind
                if kind == "meter_silence":
                    slot += self._silence_slots()
            slot += 1

    def _silence_slots(self) -> int:
        return max(1, round(self.world.config.meter_silence_hours * 3600 / SLOT))

    def resets(self) -> dict[int, float]:
        """Slots at which the meter is replaced -> the new meter's starting level (m3)."""
        return {
            s: round(self.rnd.uniform(0, 5), 3) for s, k in self.plan.items() if k == "meter_reset"
        }

    def apply(self, readings: list[float], resets: dict[int, float]) -> list[float]:
        """The readings the meter sends, from its true ones (this datastream's unit); records the
        true volume of every slot and the faults."""
        w, ds = self.world, self.ds
        unit = 1000.0 if ds.unit == "L" else 1.0
        steps = [0.0]
        for s in range(1, len(readings)):
            base = resets[s] * unit if s in resets else readings[s - 1]
            steps.append((readings[s] - base) / unit)
        w.true_steps[ds.id] = steps

        def rounded(v: float) -> float:
            return float(round(v)) if unit == 1000.0 else round(v * 1000) / 1000

        sent: list[float] = []
        offset, quiet = 0.0, 0
        for s, reading in enumerate(readings):
            kind = self.plan.get(s)
            value = reading + offset
            if quiet:  # made like any reading, never sent (World._finish)
                quiet -= 1
                w.silenced.add((ds.id, w.t0 + (s + 1) * SLOT))
                sent.append(value)
                continue
            if kind == "meter_glitch":
                value = self.rnd.choice((0.0, rounded(value * self.rnd.uniform(0, 0.5))))
            elif kind == "meter_spike":
                value = rounded(value * 10)
            elif kind == "meter_jump":
                offset += rounded(self.rnd.uniform(10, 100) * 500 * unit)
                value = reading + offset
            elif kind == "meter_silence":
                quiet = self._silence_slots() - 1
                w.silenced.add((ds.id, w.t0 + (s + 1) * SLOT))
            sent.append(value)
            if kind is not None:
                n = self._silence_slots() if kind == "meter_silence" else 1
                w.injected[kind] += 1
                w.meter_events.append((kind, ds.id, s, n))
        return sent


def _kind(ds: Datastream) -> str:
    if ds.is_volume:
        return "vol_" + (ds.accumulation or "interval")
    return {
        "water_level": "level",
        "water_temperature": "temp",
        "water_quality_tds": "tds",
        "water_quality_ph": "ph",
    }[ds.prop]


def _round(v: float, scale: int) -> float:
    """Round as the datastream writes values: 3 decimals in m3, whole litres in L."""
    return float(round(v)) if scale == 1000 else round(v * 1000) / 1000
