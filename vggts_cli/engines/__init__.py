"""Segmentation engines: the contract (base), `--engine` by name (registry), classic/ and learned/."""
