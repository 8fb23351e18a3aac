"""Benchmark: monitorsim writing a 10,000-row page of the Observations feed, against the
obvious way of writing the same rows, in the same run.

    .venv/bin/python -m bench.feed [--wells 200] [--days 2] [--repeat 5]

Prints the best time per page (wall clock, best of `--repeat`) of `Feed.rows_json`, which
writes straight from the columnar arrays; of the baseline, which builds the page's rows as
dicts and writes them with orjson; of orjson alone on dicts built beforehand (the floor); and
the ratios. The stand-in must not be what a pull waits for: goal ≤ 1× the baseline.
"""

import argparse
import math
import time

import orjson

from monitorsim.app import build_app
from monitorsim.config import Config

PAGE = 10_000


def best_of(repeat: int, work) -> float:
    best = math.inf
    for k in range(repeat):
        started = time.perf_counter()
        work(k)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wells", type=int, default=200)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    app = build_app(Config(scenario="bench", wells=args.wells, days=args.days))
    feed, rows = app.feed, len(app.world)
    starts = [k * PAGE % (rows - PAGE) for k in range(args.repeat)]
    pages = [(i, i + PAGE) for i in starts]
    dicts = [feed.rows(i, j) for i, j in pages]

    ours = best_of(args.repeat, lambda k: feed.rows_json(*pages[k]))
    baseline = best_of(args.repeat, lambda k: orjson.dumps(feed.rows(*pages[k])))
    floor = best_of(args.repeat, lambda k: orjson.dumps(dicts[k]))
    ratio = ours / baseline
    print(f"feed: {rows:,} rows of {len(app.world.wells):,} wells; pages of {PAGE:,} rows")
    print(f"rows_json:                {ours * 1e3:7.2f} ms a page  [best of {args.repeat}]")
    print(f"baseline (dicts, orjson): {baseline * 1e3:7.2f} ms a page")
    print(f"floor (orjson alone):     {floor * 1e3:7.2f} ms a page")
    print(f"rows_json = {ratio:.2f}× the baseline, {ours / floor:.1f}× the floor; "
          f"goal ≤ 1× the baseline: {'met' if ratio <= 1 else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
