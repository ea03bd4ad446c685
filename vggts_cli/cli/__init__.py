"""The `vggts` command line: `app` builds it from one module per command; `common` holds what they share."""


def main() -> None:
    """Console-script entry point (imports the app only when called)."""
    from vggts_cli.cli.app import main as run

    run()
