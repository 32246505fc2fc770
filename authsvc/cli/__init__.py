"""The admin command line: ``python -m authsvc …``.

One module per noun. Every command takes ``--json`` and then prints exactly
one JSON document on stdout; errors are one line on stderr and exit status 1.
The CLI never imports the web or protocol layers (``serve`` starts gunicorn).
"""

import sys

import click

from ..errors import AuthsvcError
from . import clients
from . import db
from . import keys
from . import serve
from . import tokens
from . import users


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli():
    """Administer an authsvc issuer."""


for module in (db, keys, clients, users, tokens, serve):
    cli.add_command(module.command)


def main(argv=None) -> None:
    try:
        cli.main(args=argv, prog_name="python -m authsvc", standalone_mode=False)
    except click.exceptions.Abort:
        fail("aborted")
    except click.ClickException as exc:
        fail(exc.format_message(), code=exc.exit_code or 2)
    except (AuthsvcError, ValueError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted", code=130)
    sys.exit(0)


def fail(message: str, code: int = 1):
    first_line = (message.strip().splitlines() or ["error"])[0]
    click.echo(f"authsvc: {first_line}", err=True)
    sys.exit(code)
