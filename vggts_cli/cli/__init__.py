"""The `vggts` command line: `app` builds it from one module per command; `common` holds what they share."""
