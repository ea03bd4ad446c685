"""Procedural multi-camera scenes with exact object masks (examples, tests, evaluation)."""
