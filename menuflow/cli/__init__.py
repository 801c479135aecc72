"""`menuflow`: the command line for admins and integrators, over menuflow.client.

    menuflow templates push templates/          create or update every file, as one set
    menuflow templates pull templates/          write the live templates as files
    menuflow templates validate templates/      check files offline, problems per file
    menuflow templates diff templates/x.json    the file against the live version
    menuflow templates push --draft templates/  save as drafts; customers keep the live versions
    menuflow templates preview|changes|versions|publish|rollback NAME
    menuflow test templates/tests/              scripted conversation tests, in the sandbox
    menuflow studio                             a web page to try templates in the sandbox
    menuflow conversations list|show|start|update|end
    menuflow results list|show
    menuflow send PHONE --text ...              (or --interactive FILE, --template NAME ...)
    menuflow events tail [--from ID] [--type T] follow events as they commit; events list

Connection options come from the environment (MENUFLOW_TARGET, MENUFLOW_TOKEN,
MENUFLOW_BUSINESS, MENUFLOW_TLS_CA, MENUFLOW_TLS_CERT, MENUFLOW_TLS_KEY, MENUFLOW_TIMEOUT) or
the flags of the same names.
"""

from __future__ import annotations

import sys

import click

from menuflow.cli.conversations import conversations, results, send
from menuflow.cli.events import events
from menuflow.cli.flowtests import test
from menuflow.cli.handoff import handoff, queue, resume
from menuflow.cli.output import failure
from menuflow.cli.studio import studio
from menuflow.cli.templates import templates
from menuflow.client import Connection, MenuflowError


@click.group(help=__doc__.split("\n\n")[0] if __doc__ else None)
@click.option("--target", envvar="MENUFLOW_TARGET", help="flowsvc's address, host:port.")
@click.option("--token", envvar="MENUFLOW_TOKEN", help="A bearer token (admin or client).")
@click.option("--business", envvar="MENUFLOW_BUSINESS", help="Meta's id of the business number.")
@click.option(
    "--tls-ca", envvar="MENUFLOW_TLS_CA", help="Reach flowsvc over TLS, trusting this CA."
)
@click.option("--tls-cert", envvar="MENUFLOW_TLS_CERT", help="Client certificate (mTLS).")
@click.option("--tls-key", envvar="MENUFLOW_TLS_KEY", help="Client certificate's key.")
@click.option("--timeout", envvar="MENUFLOW_TIMEOUT", type=float, help="Seconds per call.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_context
def cli(
    context: click.Context,
    target: str | None,
    token: str | None,
    business: str | None,
    tls_ca: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    timeout: float | None,
    as_json: bool,
) -> None:
    """menuflow: templates, conversations, results and messages, from the command line."""
    context.obj = {
        "connection": Connection.from_env(
            {},
            target=target,
            token=token,
            business=business,
            tls_ca=tls_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
            timeout=timeout,
        ),
        "json": as_json,
    }


cli.add_command(templates)
cli.add_command(conversations)
cli.add_command(results)
cli.add_command(send)
cli.add_command(events)
cli.add_command(test)
cli.add_command(studio)
cli.add_command(handoff)
cli.add_command(resume)
cli.add_command(queue)


def main() -> None:
    """The `menuflow` entry point: a failed call prints its status and violations, exit 1."""
    try:
        cli.main(standalone_mode=False)
    except MenuflowError as error:
        failure(error)
        sys.exit(1)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
