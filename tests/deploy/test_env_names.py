"""Every AUTHSVC_* variable the deployment files set is one authsvc reads.

A misspelt or invented name is ignored at start-up, silently: the instance runs on a default
(a file key ring instead of the database one, text logs instead of JSON) and nobody notices
until a fleet misbehaves.
"""

import re

from authsvc import config

from .tools import ROOT
from .tools import deployment_files

NAME = re.compile(r"\bAUTHSVC_[A-Z0-9_]*[A-Z0-9]")


def known_names() -> set[str]:
    """The settings' table, plus what gunicorn's configuration reads from the environment."""
    names = {"AUTHSVC_" + name.upper() for name in config._ENV}
    names |= set(NAME.findall((ROOT / "authsvc" / "gunicorn_config.py").read_text()))
    return names


def test_deployment_files_name_only_known_settings():
    known = known_names()
    used = {}
    for path in deployment_files():
        for name in NAME.findall(path.read_text()):
            used.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    assert used, "no AUTHSVC_* variable found: the scan is looking in the wrong place"
    unknown = {name: sorted(files) for name, files in sorted(used.items()) if name not in known}
    assert not unknown, f"variables authsvc does not read (config._ENV, gunicorn_config.py): {unknown}"
