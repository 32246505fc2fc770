# gunicorn reads this file by default; the settings live in the package.
from authsvc.gunicorn_config import *  # noqa: F401,F403
from authsvc.gunicorn_config import child_exit  # noqa: F401
from authsvc.gunicorn_config import on_exit  # noqa: F401
from authsvc.gunicorn_config import on_starting  # noqa: F401
from authsvc.gunicorn_config import post_fork  # noqa: F401
from authsvc.gunicorn_config import post_worker_init  # noqa: F401
