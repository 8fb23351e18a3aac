"""monitorsim: a stand-in for Shanxi's geothermal monitoring platform (SensorThings API 1.1).

An external system's stand-in for demos and tests: it imports nothing of geocredit's own.
"""

from .app import MonitorSim, build_app
from .config import Config
from .server import run_in_thread, running

__all__ = ["Config", "MonitorSim", "build_app", "run_in_thread", "running"]
