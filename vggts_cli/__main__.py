"""`python -m vggts_cli` = the `vggts` command."""

from vggts_cli.cli.app import main

main()
