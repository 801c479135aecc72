"""`python -m menuflow.cli`, the same as the `menuflow` command."""

from menuflow.cli import main

main()
