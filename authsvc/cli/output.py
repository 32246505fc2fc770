"""All printing of the command line lives here (the shape of hydra's cmd/output_*.go)."""

import json

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


def emit(obj, as_json: bool, text: str | None = None) -> None:
    """Print ``obj`` as JSON, or ``text`` (default: a readable rendering of ``obj``)."""
    if as_json:
        click.echo(json.dumps(obj, default=str))
        return
    if text is not None:
        click.echo(text)
        return
    rows = obj if isinstance(obj, list) else [obj]
    for row in rows:
        click.echo("  ".join(f"{k}={_plain(v)}" for k, v in row.items()))
    if isinstance(obj, list) and not obj:
        click.echo("(none)")


def warn(message: str) -> None:
    click.echo(f"authsvc: {message}", err=True)


def _plain(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "-"
    return "-" if value is None else str(value)
