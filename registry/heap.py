"""Process-wide runtime settings: the cyclic garbage collector and the GIL's switch interval.

They belong to a whole process, so only the entry point that owns the process applies them —
the API's app factories, `geocredit pull`, the scheduler's pull process, a benchmark — never
the library code they call. Under `geocredit serve` the scheduler pulls in a process of its
own (jobs.scheduler.run_in_own_process), so a pull never changes the API's settings. The API's
own large-request lane shortens the switch interval while it works (api.context.LargeRequestLane).
"""

import contextlib
import gc
import sys
from collections.abc import Iterator

_frozen = False  # not gc.get_freeze_count(): it counts the permanent generation one by one


def freeze_long_lived() -> None:
    """Once per process, when its long-lived objects exist (modules, the schema, engines) and
    nothing of a request or a pull does yet — at the API's start-up, or a pull's: collect, then
    move every object into the permanent generation, which the cyclic GC never walks. Otherwise
    each full collection walks these ~200k objects that never die: 50–130 ms a time, a fifth of a
    1,000-code `eligibilities` and ~0.5 s of a 1M-row pull. Frozen objects are still freed by
    reference counting; only cycles among them would stay, and they are made once."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


@contextlib.contextmanager
def quick_gil_handoff(seconds: float = 0.0005) -> Iterator[None]:
    """A shorter GIL switch interval, for a pull: its storing thread wakes each time PostgreSQL
    has taken its data or answered, and with the default 5 ms it then waits for the checking
    thread to let go of the GIL while PostgreSQL idles: 1M rows stored in 12 s of COPY at 5 ms,
    8.8 s at 0.5 ms."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@contextlib.contextmanager
def rare_young_collections(threshold: int = 100_000) -> Iterator[None]:
    """The cyclic GC's youngest generation collected every `threshold` allocations instead of
    700, for a pull: parsing and checking a page makes ~10^5 acyclic objects, and passes over
    the growing young generation would cost more than the parsing itself. Reference counting
    frees them as usual; the rare collection still finds any cycle."""
    previous = gc.get_threshold()
    gc.set_threshold(threshold, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)


@contextlib.contextmanager
def tuned_for_a_pull() -> Iterator[None]:
    """What a process that pulls applies before it starts: all of the above."""
    freeze_long_lived()
    with quick_gil_handoff(), rare_young_collections():
        yield
