"""The layer table of STYLE.md ("A layout that follows them"), checked with ``ast``.

Layers, lowest first: L0 config/errors → L1 keyring, store → L2 domain
services → L3 services wiring → L4 oauth → L5 web, cli → L6 app. A module
imports only from its own layer or below; ``verify`` sits outside the ladder.
Imports inside functions count too: a lazy import is still a dependency.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import ROOT

PACKAGE = ROOT / "authsvc"

# Top-level authsvc component → layer. Entry points (demo, gunicorn_config,
# __main__) sit at the CLI's level: they run set-up, they are not imported.
LAYERS = {
    "config": 0,
    "errors": 0,
    "events": 0,
    "logs": 0,
    "keyring": 1,
    "store": 1,
    "revocation": 2,
    "ratelimit": 2,
    "accounts": 2,
    "tokens": 2,
    "backchannel": 2,
    "services": 3,
    "oauth": 4,
    "web": 5,
    "cli": 5,
    "demo": 5,
    "gunicorn_config": 5,
    "metrics_dir": 5,
    "granian_server": 6,
    "__main__": 5,
    "app": 6,
}
STDLIB = set(sys.stdlib_module_names)
# The one part of the verifier the server may import: the canonical forms DPoP compares
# (htu URLs, JWK thumbprints), standard library only, so that both sides agree by construction.
SHARED_FROM_VERIFY = "authsvc.verify._canonical"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved to absolute names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:
                    # ``from . import x``: x is a submodule (or a name of the package).
                    found.update(f"{target}.{alias.name}" for alias in node.names)
                else:
                    found.add(target)
            else:
                found.add(node.module)
    return found


MODULES = {module_name(path): imports_of(path) for path in sorted(PACKAGE.rglob("*.py"))}


def component(module: str) -> str | None:
    """``authsvc.oauth.server`` → ``oauth``; None outside authsvc or for authsvc itself."""
    parts = module.split(".")
    if parts[0] != "authsvc" or len(parts) < 2:
        return None
    return parts[1]


def third_party(imports) -> set[str]:
    return {m for m in imports if m.split(".")[0] not in STDLIB and m.split(".")[0] != "authsvc"}


def test_the_tree_was_found():
    assert {"authsvc.config", "authsvc.oauth.server", "authsvc.web.oauth", "authsvc.cli.keys", "authsvc.verify"} <= set(
        MODULES
    )
    # Relative imports are resolved: the check would be blind otherwise.
    assert "authsvc.errors" in MODULES["authsvc.config"]


def test_every_component_has_a_layer():
    unknown = {component(m) for m in MODULES} - set(LAYERS) - {None, "verify"}
    assert not unknown, f"add {unknown} to the layer table (STYLE.md) and to LAYERS here"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if component(m) in LAYERS))
def test_imports_point_down_the_ladder(module):
    own = component(module)
    upward = sorted(
        imported
        for imported in MODULES[module]
        if component(imported) not in (None, own)
        and imported != SHARED_FROM_VERIFY
        and (component(imported) == "verify" or LAYERS.get(component(imported), 99) > LAYERS[own])
    )
    assert not upward, f"{module} (L{LAYERS[own]}) imports from a higher layer: {upward}"


def test_only_oauth_imports_authlib():
    offenders = sorted(
        m
        for m, imports in MODULES.items()
        if component(m) != "oauth" and any(i.split(".")[0] == "authlib" for i in imports)
    )
    assert not offenders, f"only authsvc.oauth may import authlib: {offenders}"


def test_cli_never_imports_web_or_oauth():
    offenders = sorted(
        (m, i)
        for m, imports in MODULES.items()
        if component(m) == "cli"
        for i in imports
        if component(i) in ("web", "oauth", "app")
    )
    assert not offenders, offenders


def test_store_and_keyring_know_nothing_of_the_layers_above():
    for module, imports in MODULES.items():
        if component(module) not in ("store", "keyring"):
            continue
        inside = {component(i) for i in imports} - {None}
        assert inside <= {component(module), "errors", "config"}, f"{module} imports {sorted(inside)}"
        assert not {i.split(".")[0] for i in imports} & {"flask", "authlib", "werkzeug", "click"}, module


def test_verify_imports_no_other_authsvc_module():
    for module, imports in MODULES.items():
        if component(module) == "verify":
            others = sorted(i for i in imports if i.startswith("authsvc") and component(i) != "verify")
            assert not others, f"{module} imports {others}"


@pytest.mark.parametrize("module", ["authsvc.config", "authsvc.errors"])
def test_config_and_errors_use_the_standard_library_only(module):
    imports = MODULES[module]
    assert not third_party(imports), f"{module} imports {sorted(third_party(imports))}"
    assert {i for i in imports if i.startswith("authsvc")} <= {"authsvc.errors"}


def test_package_root_imports_nothing():
    assert MODULES["authsvc"] == set()


def test_the_cli_loads_no_web_or_protocol_code():
    """Transitively, not only directly: importing the CLI must not pull in Flask's app or Authlib."""
    code = (
        "import sys, authsvc.cli, authsvc.services;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('authlib', 'flask')"
        " or m.startswith(('authsvc.web', 'authsvc.oauth', 'authsvc.app')));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_what_the_server_shares_with_the_verifier_needs_only_the_standard_library():
    imports = MODULES[SHARED_FROM_VERIFY]
    assert imports and all(name.split(".")[0] in STDLIB for name in imports), imports
