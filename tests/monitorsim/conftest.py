"""Fixtures for monitorsim's own tests: a small world and a server on a loopback port."""

from __future__ import annotations

import httpx
import pytest

from monitorsim import build_app, run_in_thread
from tests.monitorsim.monitorsim_replay import small_config


@pytest.fixture(scope="module")
def sim():
    """A 'faults' scenario server (HTTP faults off between tests) and a client for it."""
    app = build_app(small_config(page_max=2000))
    url, stop, app = run_in_thread(app=app)
    client = httpx.Client(base_url=url, timeout=30)
    yield url, app, client
    client.close()
    stop()


@pytest.fixture(autouse=True)
def _no_http_faults(request):
    if "sim" in request.fixturenames:
        _, app, _ = request.getfixturevalue("sim")
        app.faults.update({"reset": True})
