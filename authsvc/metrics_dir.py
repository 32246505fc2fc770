"""The Prometheus multiprocess directory, made ready before a server starts its workers.

Each worker of gunicorn or granian writes its metrics to files in
``PROMETHEUS_MULTIPROC_DIR`` so that ``/metrics`` reports the whole server.
prometheus_client picks its multiprocess mode when it is first imported, so
this module does not import it: the servers call ``prepare_metrics_dir``
before any worker exists.
"""

import logging
import os
import re
import tempfile

log = logging.getLogger(__name__)

# prometheus_client's multiprocess files: {counter|histogram|summary|gauge_<mode>}_<pid>.db
_METRICS_FILE = re.compile(r"(?:counter|histogram|summary|gauge_(?:live)?(?:all|min|max|sum|mostrecent))_\d+\.db")


def prepare_metrics_dir() -> str | None:
    """Clean the operator's ``PROMETHEUS_MULTIPROC_DIR``, or create a private one and set it.

    Returns the directory created here (the caller removes it at exit), or None
    when the operator named one. Raises OSError when the named one cannot be cleaned.
    """
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        path = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="authsvc-metrics-")
        return path
    removed = remove_stale_metrics(path)
    if removed:
        log.info("PROMETHEUS_MULTIPROC_DIR: removed %d file(s) of an earlier run", removed)
    return None


def remove_stale_metrics(path: str) -> int:
    """Delete the metrics files an earlier run left in ``path``; return how many.

    An instance stopped with kill -9 never marks its workers dead, so their
    files would keep adding old counts (and dead workers' gauges) to every
    scrape. Nothing of this instance runs yet, so every such file is stale.
    Only prometheus_client's own file names are touched.
    """
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        os.makedirs(path, mode=0o700)
        return 0
    removed = 0
    for name in names:
        if _METRICS_FILE.fullmatch(name) and os.path.isfile(os.path.join(path, name)):
            os.remove(os.path.join(path, name))
            removed += 1
    return removed
