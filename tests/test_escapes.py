"""Text from file names and manifests reaches the terminal with its control characters escaped and rich
markup in it printed literally: an ESC in a name can never recolour, retitle or clear the user's terminal."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from recordings import make_recording

from vggts_cli.errors import printable

RED = "\x1b[31m"  # SGR "red": raw, it would colour everything after it


def vggts(*args: object) -> subprocess.CompletedProcess:
    """The CLI in a subprocess; a wide console, so that rich does not wrap the lines the tests read."""
    env = {**os.environ, "COLUMNS": "1000"}
    return subprocess.run(
        [sys.executable, "-m", "vggts_cli", *map(str, args)], capture_output=True, text=True, env=env
    )


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A short recording (ego 15 frames, exo 12) and its seed mask."""
    folder = tmp_path_factory.mktemp("small")
    rec = make_recording(folder / "rec", seconds=0.5, scale=0.25)
    return rec.videos[0], rec.videos[1], rec.seed_png(folder / "mask.png")


def test_printable_escapes_controls_and_keeps_text():
    undecodable = b"\xff\x9b".decode("utf-8", "surrogateescape")  # a file name that is not UTF-8
    text = f"a{RED}b\x9b\x7f\t\nü [red]日本{undecodable}"
    assert printable(text) == "a\\x1b[31mb\\x9b\\x7f\\x09\\x0aü [red]日本\\xff\\x9b"
    assert printable("plain/path-ü.mp4") == "plain/path-ü.mp4"


def test_propagate_prints_names_escaped_and_literally(tmp_path, small):
    ego, exo, mask = small
    src = shutil.copy(ego, tmp_path / f"{RED}[red]ego.mp4")  # camera name: the stem, ESC and markup in it
    proc = vggts("propagate", "--src", src, "--dst", exo, "--mask", mask, "--out", tmp_path / "out")
    proc.check_returncode()
    assert "\x1b" not in proc.stderr
    assert "\\x1b[31m[red]ego: 15 frames" in proc.stderr, proc.stderr
    assert (tmp_path / "out" / f"{RED}[red]ego" / "masks.json").is_file()  # the folder keeps the real name

    # An error quoting a path: the one error line.
    title = tmp_path / "\x1b]0;pwned\x07.png"  # OSC "set window title"
    proc = vggts("propagate", "--src", src, "--dst", exo, "--mask", title, "--out", tmp_path / "out2")
    assert proc.returncode == 1 and "\x1b" not in proc.stderr and "\x07" not in proc.stderr
    assert proc.stderr.splitlines() == [
        f"vggts: error: seed mask {tmp_path}/\\x1b]0;pwned\\x07.png does not exist or is not a file"
    ]


def test_batch_prints_ids_and_paths_escaped_and_literally(tmp_path, small):
    ego, exo, mask = small
    manifest = tmp_path / "jobs\x1b[2J.csv"  # "clear screen" in the manifest's name: every row's `where`
    with manifest.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "src", "dst", "mask", "engine"])
        writer.writerow([f"{RED}red", ego, exo, mask, "classic"])  # not a folder name: a bad row
        writer.writerow(["[red]x", ego, exo, mask, "classic"])  # a good one, markup in its id
    out = tmp_path / "[bold]out"
    proc = vggts("batch", manifest, "--out", out, "--workers", "1", "--skip-bad")
    proc.check_returncode()
    assert "\x1b" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == (
        "vggts: skipping jobs\\x1b[2J.csv:2 (id \\x1b[31mred): id '\\x1b[31mred' must be a plain folder "
        "name: no / or \\, not starting with '.'"
    )
    assert lines[-1].startswith("1 done, 1 bad;") and lines[-1].endswith(f"-> {out}/batch.json"), lines
    assert (out / "[red]x" / "ego" / "masks.json").is_file()
