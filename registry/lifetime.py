"""A child process's lifetime is tied to its parent's.

The ASGI server's workers and the scheduler's pull processes are children: when their parent
is gone (kill -9, the OOM killer), nobody would stop them. An orphaned server worker would go on
serving the port and running the scheduler, so that a restarted server finds its port taken; an
orphaned pull would go on retrying a platform that is down."""

import logging
import multiprocessing
import os
import signal
import threading

log = logging.getLogger(__name__)


def stop_when_orphaned() -> None:
    """In a process started by `multiprocessing` (granian's workers, the scheduler's pulls):
    SIGTERM to itself once its parent has exited, the graceful way to stop for either."""
    parent = multiprocessing.parent_process()
    if parent is None:  # not a multiprocessing child: its parent is a shell or a supervisor
        return

    def watch() -> None:
        parent.join()  # returns when the parent's end of their pipe closes: it has exited
        log.warning("parent process %s is gone: stopping", parent.pid)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()
