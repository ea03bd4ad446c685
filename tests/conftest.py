"""Fixtures shared by the test modules: the official test vectors' inputs/outputs, an in-process CLI and
the smallest recording."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from click.testing import Result
from recordings import make_recording
from typer import Typer
from typer.testing import CliRunner
from vectors import load_vectors

CliFn = Callable[..., Result]


@pytest.fixture(scope="session")
def io() -> dict[str, torch.Tensor]:
    """Inputs and outputs of the official backbone test-vector build (a module may override it with
    another build's, as test_union_head.py does with the head's)."""
    return load_vectors("backbone_small.io.safetensors")


def run_app(app: Typer, *args: object) -> Result:
    """Run a Typer app in-process with `args`; stdout and stderr are kept apart on the result."""
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def cli() -> CliFn:
    """`cli(app, *args)`: `run_app` as a fixture."""
    return run_app


@pytest.fixture(scope="session")
def small(tmp_path_factory) -> tuple[Path, Path, Path]:
    """The smallest recording, ego (15 frames) and exo (12) at a quarter of the example's size, and the
    seed mask of ego's frame 0."""
    folder = tmp_path_factory.mktemp("small")
    rec = make_recording(folder / "rec", seconds=0.5, scale=0.25)
    return rec.videos[0], rec.videos[1], rec.seed_png(folder / "mask.png")
