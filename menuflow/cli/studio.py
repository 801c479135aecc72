"""`menuflow studio`: serve the studio page locally (uvicorn), talking to flowsvc as the admin."""

from __future__ import annotations

import click
import uvicorn

from menuflow.cli.output import out


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option("--port", default=8090, show_default=True, help="Port to serve on.")
@click.pass_context
def studio(context: click.Context, host: str, port: int) -> None:
    """A WhatsApp-like page to try any template version (drafts included) in the sandbox, tap
    its buttons and rows, see its step and context, and preview it. Needs an admin token."""
    from menuflow.studio import create_app

    out.print(f"menuflow studio on http://{host}:{port}/ (Ctrl-C stops it)", markup=False)
    uvicorn.run(create_app(context.obj["connection"]), host=host, port=port, log_level="warning")
