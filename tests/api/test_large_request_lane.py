"""Large requests run on a lane of their own (api.context.LargeRequestLane): another thread and
event loop with its own connections, so that the server's loop answers other requests
meanwhile. Cancelling on the server's side cancels the work on the lane, and the GIL's switch
interval is the default again once the lane is idle."""

import asyncio
import sys
import threading

import pytest
import sqlalchemy as sa

from api.context import LargeRequestLane, Services


@pytest.fixture
async def lane(db_url):
    services = Services.for_database(db_url)
    lane = LargeRequestLane(services)
    yield lane
    await lane.close()
    await services.close()


async def test_work_runs_on_the_lane_with_its_own_connections(lane):
    default = sys.getswitchinterval()

    async def work() -> tuple[str, int, float]:
        one = await lane.services.read(lambda conn: conn.scalar(sa.text("SELECT 1")))
        return threading.current_thread().name, one, sys.getswitchinterval()

    assert await lane.run(work()) == ("large-requests", 1, LargeRequestLane.SWITCH_INTERVAL_S)
    assert sys.getswitchinterval() == default


async def test_cancelling_the_caller_cancels_the_work_on_the_lane(lane):
    default = sys.getswitchinterval()
    started, cancelled = threading.Event(), threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    caller = asyncio.ensure_future(lane.run(forever()))
    assert await asyncio.to_thread(started.wait, 30)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert await asyncio.to_thread(cancelled.wait, 30)
    assert sys.getswitchinterval() == default
