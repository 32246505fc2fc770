"""Housekeeping off the request path: a daemon thread per process purges expired rows.

Purging touches every table and can take a while on a large store; run in a
request's teardown it made that request's client wait, once an interval per
worker. The web app starts the thread on its first request, in the process
that serves it (a thread started before gunicorn forks would not survive the
fork), and ``Services.close`` stops it.
"""

import logging
import os
import threading

log = logging.getLogger(__name__)


class Housekeeper:
    """Calls ``services.housekeeping()`` now and then every ``services.housekeeping_interval`` seconds."""

    def __init__(self, services):
        self._services = services
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._stopped = threading.Event()

    def start(self) -> None:
        """Start the thread once per process; a no-op once it runs, and after ``stop``."""
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._stopped.is_set() or (self._thread is not None and self._pid == os.getpid()):
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._loop, name="authsvc-housekeeping", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and self._pid == os.getpid():
            thread.join(timeout)

    def _loop(self) -> None:
        while not self._stopped.is_set():
            try:
                self._services.housekeeping()
            except Exception:  # noqa: BLE001 - the thread must outlive any one failure; it retries next interval
                log.exception("housekeeping failed; retrying next interval")
            self._stopped.wait(self._services.housekeeping_interval)
