"""Per-camera outputs of `vggts propagate` (outputs.py: which exist and how they are built)."""
