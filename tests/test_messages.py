"""What the user reads can be trusted: text from file names and manifests reaches the terminal with its
control characters escaped and rich markup in it printed literally, and an --out that cannot be written
(a file, a read-only disk, a full disk) is one line saying what and where, leaving no output behind."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vggts_cli.errors import printable

RED = "\x1b[31m"  # SGR "red": raw, it would colour everything after it
OUTPUTS = {"masks.json", "overlay.mp4"}  # the final names of the jobs' outputs


def vggts(*args: object) -> subprocess.CompletedProcess:
    """The CLI in a subprocess; a wide console, so that rich does not wrap the lines the tests read."""
    env = {**os.environ, "COLUMNS": "1000"}
    return subprocess.run(
        [sys.executable, "-m", "vggts_cli", *map(str, args)], capture_output=True, text=True, env=env
    )


def write_manifest(path: Path, rows: list[list[object]]) -> Path:
    """A CSV manifest: id, src, dst, mask, engine per row."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "src", "dst", "mask", "engine"])
        writer.writerows(rows)
    return path


# --------------------------------------------------------------------------- control characters, markup


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
    manifest = write_manifest(
        tmp_path / "jobs\x1b[2J.csv",  # "clear screen" in the manifest's name: every row's `where`
        [
            [f"{RED}red", ego, exo, mask, "classic"],  # not a folder name: a bad row
            ["[red]x", ego, exo, mask, "classic"],  # a good one, markup in its id
        ],
    )
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


# --------------------------------------------------------------------------- --out that cannot be written

Mount = Callable[..., Path]


@pytest.fixture
def tmpfs(tmp_path) -> Iterator[Mount]:
    """`tmpfs(size, *options)`: a real tmpfs of `size` mounted on a new folder (unmounted afterwards)."""
    mounted: list[Path] = []

    def mount(size: str, *options: str) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]), "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            if os.geteuid() != 0 or "permission denied" in proc.stderr.lower():  # EPERM: no CAP_SYS_ADMIN
                pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()}); needs root")
            pytest.fail(f"mount failed: {proc.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], check=True)


def command(kind: str, small: tuple[Path, Path, Path], out: Path, manifest_dir: Path) -> list[object]:
    """`vggts propagate` of the small recording into `out`, or `vggts batch` of it as job `j`."""
    ego, exo, mask = small
    if kind == "propagate":
        return ["propagate", "--src", ego, "--dst", exo, "--mask", mask, "--engine", "classic", "--out", out]
    manifest = write_manifest(manifest_dir / "jobs.csv", [["j", ego, exo, mask, "classic"]])
    return ["batch", manifest, "--out", out, "--workers", "1"]


def leftovers(folder: Path) -> list[Path]:
    """Outputs under their final names and partial files of any kind."""
    return [p for p in folder.rglob("*") if p.name in OUTPUTS or ".part" in p.name]


@pytest.mark.parametrize("kind", ["propagate", "batch"])
def test_out_a_file(tmp_path, small, kind):
    out = tmp_path / "x"
    out.write_text("keep me\n")
    for where, message in (
        (out, f"{out}: --out is a file, not a folder"),
        (out / "sub", f"{out / 'sub'}: --out is inside {out}, which is a file"),
    ):
        proc = vggts(*command(kind, small, where, tmp_path))
        assert proc.returncode == 2 and proc.stderr.splitlines() == [f"vggts: error: {message}"], proc.stderr
    assert out.read_text() == "keep me\n"


@pytest.mark.parametrize("kind", ["propagate", "batch"])
def test_out_on_a_read_only_disk(tmp_path, small, tmpfs, kind):
    out = tmpfs("1m", "ro") / "out"
    proc = vggts(*command(kind, small, out, tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"vggts: error: {out}: cannot write there (read-only file system)"]
    assert not out.exists()


def test_propagate_on_a_full_disk_keeps_nothing_and_resumes(tmp_path, small, tmpfs):
    # 32 KiB: room for the lock and the journal (12 KiB), not for the outputs (about 56 KiB).
    disk = tmpfs("32k")
    out = disk / "out"
    args = command("propagate", small, out, tmp_path)
    proc = vggts(*args)
    assert proc.returncode == 1
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"vggts: error: {out}: no space left on device while writing "), line
    assert line.endswith("; no output was kept (make room, then rerun with --resume)"), line
    assert leftovers(disk) == []

    # What the line says to do works: with room, --resume writes what a fresh run writes.
    subprocess.run(["mount", "-o", "remount,size=1m", str(disk)], check=True)
    vggts(*args, "--resume").check_returncode()
    fresh = tmp_path / "fresh"
    vggts(*command("propagate", small, fresh, tmp_path)).check_returncode()
    for camera in ("ego", "exo"):
        assert (out / camera / "masks.json").read_bytes() == (fresh / camera / "masks.json").read_bytes()


def test_batch_on_a_full_disk_fails_the_job_and_keeps_nothing(tmp_path, small, tmpfs):
    disk = tmpfs("32k")
    out = disk / "out"
    proc = vggts(*command("batch", small, out, tmp_path))
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    failed = f"vggts: job j (jobs.csv:2) failed: {out / 'j'}: no space left on device while writing "
    assert lines[0].startswith(failed), lines
    assert lines[-1] == f"vggts: error: 1 of 1 jobs failed; see {out / 'batch.json'}"
    assert leftovers(disk) == []
    assert json.loads((out / "batch.json").read_text())["counts"] == {"failed": 1}
