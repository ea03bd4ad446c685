"""`vggts batch`: many `vggts propagate` jobs from a manifest, on a local process pool or a Ray cluster."""
