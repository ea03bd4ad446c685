"""`python -m vggts_cli` = the `vggts` command."""

from vggts_cli.cli import main

main()
