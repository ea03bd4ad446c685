"""`vggts batch` on real recordings: manifest checks, the local pool and a real local Ray cluster give what
`vggts propagate` gives, a killed Ray worker loses nothing, failures stay with their job, --resume."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import pytest
from recordings import make_recording

from vggts_cli.batch.manifest import COLUMNS, load_manifest

RAY = Path(sys.executable).with_name("ray")
RAY_HOOKS = Path(__file__).with_name("ray_hooks")
HAVE_RAY = shutil.which("ray", path=str(RAY.parent)) is not None
try:
    import ray  # noqa: F401
except ImportError:
    HAVE_RAY = False
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'vggts[ray]')")


def vggts(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "vggts_cli", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"vggts {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` but the resume journal, by relative path, with its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".vggts" not in p.parts
    }


# --------------------------------------------------------------------------- the corpus: 6 good jobs, 1 bad

# Each job's manifest cells (paths relative to the corpus folder); propagate_args makes its command line.
# The weight-free classic engine: its outputs do not depend on how many threads a worker gets, so batch and
# plain runs must agree byte for byte (the learned engine's float sums may differ in the last bits).
JOBS = {
    "plain": {
        "engine": "classic",
        "src": "r1/ego.mp4",
        "dst": "r1/exo.mp4",
        "mask": "r1/mask0.png",
        "write": "rle,overlay",
    },
    "mid-seed": {
        "engine": "classic",
        "src": "r1/ego.mp4",
        "dst": "r1/exo.mp4",
        "mask": "r1/mask7.png",
        "mask_frame": "7",
        "write": "rle;redact",
        "redact": "pixelate",
    },
    "three-cams": {
        "engine": "classic",
        "src": "r2/ego.mp4",
        "dst": "r2/exo.mp4;r1/exo.mp4",
        "mask": "r2/mask0.png",
        "offsets": "exo=0.1",
        "write": "rle;png",
    },
    "fill": {
        "engine": "classic",
        "src": "r2/ego.mp4",
        "dst": "r2/exo.mp4",
        "mask": "r2/mask0.png",
        "write": "rle,redact",
        "redact": "fill",
        "fill_color": "#00ff00",
        "margin": "3",
    },
    "exo-seed": {
        "engine": "classic",
        "src": "r1/exo.mp4",
        "dst": "r1/ego.mp4",
        "mask": "r1/exo-mask.png",
        "write": "rle",
    },
    "matte": {
        "engine": "classic",
        "src": "r2/ego.mp4",
        "dst": "r1/exo.mp4",
        "mask": "r2/mask0.png",
        "write": "matte,rle",
    },
}
BAD = {"id": "too-far", "src": "r1/ego.mp4", "dst": "r1/exo.mp4", "mask": "r1/mask0.png", "mask_frame": "99"}


def propagate_args(cells: dict[str, str], root: Path) -> list[str]:
    """The `vggts propagate` command line of a manifest row (absolute paths, as the batch resolves them)."""
    args = ["--src", str(root / cells["src"]), "--mask", str(root / cells["mask"])]
    for dst in cells["dst"].split(";"):
        args += ["--dst", str(root / dst)]
    options = {"engine": "--engine", "mask_frame": "--mask-frame", "redact": "--redact", "margin": "--margin"}
    options |= {"fill_color": "--fill-color", "offsets": "--offset"}
    for key, flag in options.items():
        if key in cells:
            args += [flag, cells[key]]
    return [*args, "--write", cells.get("write", "rle,overlay").replace(";", ",")]


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as f:
        # The manifest's own columns, those the rows use, in its order.
        writer = csv.DictWriter(f, fieldnames=[c for c in COLUMNS if any(c in row for row in rows)])
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Two short recordings, a manifest (jobs.csv: the six jobs and the bad one) and each job's reference
    output from a plain `vggts propagate` (refs/<id>)."""
    root = tmp_path_factory.mktemp("corpus").resolve()
    for name in ("r1", "r2"):
        rec = make_recording(root / name, seconds=0.5, scale=0.25)
        rec.seed_png(root / name / "mask0.png", 0)
        rec.seed_png(root / name / "mask7.png", 7)
        cv2.imwrite(str(root / name / "exo-mask.png"), rec.truth(1, 0).astype("uint8") * 255)
    rows = [{"id": job_id, **cells} for job_id, cells in JOBS.items()]
    write_csv(root / "jobs.csv", rows[:3] + [BAD] + rows[3:])
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "vggts_cli", "propagate", *propagate_args(cells, root)]
            + ["--out", str(root / "refs" / job_id)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for job_id, cells in JOBS.items()
    ]
    for proc in procs:
        assert proc.wait() == 0, proc.stderr.read().decode()
    return root


def assert_matches_propagate(out: Path, root: Path, ids=JOBS) -> None:
    for job_id in ids:
        expected, got = files(root / "refs" / job_id), files(out / job_id)
        assert sorted(got) == sorted(expected), job_id
        assert "ego/masks.json" in got or "exo/masks.json" in got
        for name, data in expected.items():
            assert got[name] == data, (job_id, name)


def check_record(out: Path, summary: dict) -> None:
    record = json.loads((out / "batch.json").read_text())
    assert record == summary
    jobs = {j["id"]: j for j in record["jobs"]}
    assert record["counts"] == {"done": 6, "bad": 1}
    assert jobs["too-far"]["status"] == "bad" and "mask-frame 99" in jobs["too-far"]["error"]
    assert jobs["too-far"]["where"] == "jobs.csv:5"
    for job_id in JOBS:
        assert jobs[job_id]["status"] == "done" and jobs[job_id]["error"] is None
        cameras = jobs[job_id]["cameras"]
        assert jobs[job_id]["frames"] == sum(c["frames"] for c in cameras) > 0
        assert jobs[job_id]["seconds"] > 0
        assert all((out / job_id / p).exists() for p in jobs[job_id]["outputs"])
    assert not list(out.rglob("*.part*"))


# --------------------------------------------------------------------------- manifest checks


def test_manifest_rows_become_the_jobs_of_propagate(corpus, tmp_path):
    jobs, bad = load_manifest(corpus / "jobs.csv", tmp_path / "out")
    assert [j.id for j in jobs] == list(JOBS)
    assert [str(b) for b in bad] == [
        "jobs.csv:5 (id too-far): --mask-frame 99 is out of range: "
        f"{corpus / 'r1/ego.mp4'} has 15 frames (0..14)"
    ]
    three = jobs[2].job
    assert three.src == corpus / "r2/ego.mp4" and three.dsts == (corpus / "r2/exo.mp4", corpus / "r1/exo.mp4")
    assert three.offsets == (("exo", 0.1),) and three.write == ("rle", "png")
    assert three.out == tmp_path / "out" / "three-cams"
    assert jobs[2].outputs == tuple(
        f"{c}/{f}" for c in ("ego", "exo", "exo-2") for f in ("masks.json", "masks")
    )
    assert jobs[2].frames == 15 + 12 + 12
    fill = jobs[3].job.sink_options
    assert (fill.redact_mode, fill.fill_color, fill.margin_px) == ("fill", (0, 255, 0), 3)

    # The same rows as JSON Lines, lists and an offsets object where CSV has `;` cells.
    lines = []
    for job_id, cells in JOBS.items():
        row = {"id": job_id, **cells, "dst": cells["dst"].split(";")}
        if "offsets" in cells:
            row["offsets"] = {"exo": 0.1}
        if "mask_frame" in cells:
            row["mask_frame"] = int(cells["mask_frame"])
        lines.append(json.dumps(row))
    (corpus / "jobs.jsonl").write_text("\n".join(lines) + "\n")
    as_json, none_bad = load_manifest(corpus / "jobs.jsonl", tmp_path / "out")
    assert none_bad == [] and [j.job for j in as_json] == [j.job for j in jobs]


def test_bad_rows_one_line_each(corpus, tmp_path):
    good = {"src": "r1/ego.mp4", "dst": "r1/exo.mp4", "mask": "r1/mask0.png"}
    rows = [
        {"id": "ok", **good},
        {"id": "ok", **good},
        {"id": "../up", **good},
        {"id": ".hidden", **good},
        {"id": "", **good},
        {"id": "no-mask", **good, "mask": "r1/missing.png"},
        {"id": "no-video", **good, "dst": "r1/nope.mp4"},
        {"id": "same-twice", **good, "dst": "r1/ego.mp4"},
        {"id": "frame", **good, "mask_frame": "x"},
        {"id": "offset", **good, "offsets": "exo:0.4"},
        {"id": "camera", **good, "offsets": "side=0.4"},
        {"id": "write", **good, "write": "rle;gif"},
        {"id": "colour", **good, "fill_color": "teal"},
        {"id": "redact", **good, "redact": "smudge"},
    ]
    manifest = write_csv(corpus / "bad.csv", rows)
    jobs, bad = load_manifest(manifest, tmp_path / "out")
    assert [j.id for j in jobs] == ["ok"]
    expected = {
        3: "already used on bad.csv:2",
        4: "plain folder name",
        5: "plain folder name",
        6: "no id",
        7: "missing.png does not exist",
        8: "nope.mp4: no such file",
        9: "the same video is given twice",
        10: "mask_frame takes an integer, got 'x'",
        11: "offsets takes CAMERA=SECONDS",
        12: "names camera 'side'",
        13: "--write takes a comma list",
        14: "colour 'teal'",
        15: "redact mode 'smudge'",
    }
    assert [b.where for b in bad] == [f"bad.csv:{line}" for line in expected]
    for row, message in zip(bad, expected.values(), strict=True):
        assert message in row.error and "\n" not in row.error, (row, message)

    # JSON Lines: an unknown key, a line that is not JSON, the classic engine with a model, an unknown engine.
    (corpus / "bad.jsonl").write_text(
        "\n".join(
            [
                json.dumps({"id": "a", **good, "masks": "x.png"}),
                "{not json",
                json.dumps({"id": "b", **good, "engine": "classic", "model": "vggt-s-1b"}),
                "",
                json.dumps({"id": "c", **good, "engine": "magic"}),
                json.dumps({"id": "d", **good, "engine": "classic", "adapt": 30}),
                json.dumps({"id": "e", **good, "engine": "vggts", "adapt": 2.5}),
                json.dumps({"id": "f", **good, "engine": "vggts", "detail": "fine"}),
                json.dumps({"id": "g", **good, "engine": "classic", "detail": "huge"}),
            ]
        )
    )
    jobs, bad = load_manifest(corpus / "bad.jsonl", tmp_path / "out")
    assert jobs == [] and [b.where for b in bad] == [
        "bad.jsonl:1",
        "bad.jsonl:2",
        "bad.jsonl:3",
        "bad.jsonl:5",
        "bad.jsonl:6",
        "bad.jsonl:7",
        "bad.jsonl:8",
        "bad.jsonl:9",
    ]
    assert "unknown key 'masks'" in bad[0].error and "not a JSON object" in bad[1].error
    assert "classic engine has no weights" in bad[2].error and "'magic'" in bad[3].error
    assert "adapt applies to engine vggts" in bad[4].error and "adapt takes an integer" in bad[5].error
    assert "detail applies to engine classic" in bad[6].error and "detail 'huge' is not one" in bad[7].error


def test_a_bad_row_stops_the_batch_before_any_work(corpus, tmp_path):
    out = tmp_path / "out"
    proc = vggts("batch", str(corpus / "jobs.csv"), "--out", str(out), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        f"vggts: error: jobs.csv:5 (id too-far): --mask-frame 99 is out of range: {corpus / 'r1/ego.mp4'} "
        "has 15 frames (0..14)",
        "vggts: error: 1 of 7 jobs failed the checks; nothing ran (fix them, or pass --skip-bad to run the "
        "others)",
    ]
    assert not out.exists()


def test_ray_missing_says_how_to_install_it(corpus, tmp_path):
    # sys.modules["ray"] = None makes `import ray` fail as it does where the extra is not installed.
    code = "import sys; sys.modules['ray'] = None; from vggts_cli.cli.app import main; main()"
    proc = subprocess.run(
        [sys.executable, "-c", code, "batch", str(corpus / "jobs.csv"), "--out", str(tmp_path / "o")]
        + ["--ray", "auto"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "vggts: error: --ray needs Ray, an optional extra: pip install 'vggts[ray]'"
    ]


@needs_ray
def test_no_cluster_at_the_address_fails_fast(corpus, tmp_path):
    out = tmp_path / "out"
    address = f"127.0.0.1:{free_ports(1)[0]}"
    proc = vggts("batch", str(corpus / "jobs.csv"), "--out", str(out), "--ray", address, check=False)
    assert proc.returncode == 1 and not out.exists()
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vggts: error: no Ray cluster at 127.0.0.1:"), lines


# --------------------------------------------------------------------------- the local pool


@pytest.fixture(scope="module")
def local_run(corpus) -> tuple[Path, dict]:
    out = corpus / "local"
    proc = vggts(
        "batch", str(corpus / "jobs.csv"), "--out", str(out), "--workers", "2", "--skip-bad", "--json"
    )
    assert proc.stderr.splitlines()[0].startswith("vggts: skipping jobs.csv:5 (id too-far): --mask-frame 99")
    return out, json.loads(proc.stdout)


def test_local_pool_outputs_equal_propagate(corpus, local_run):
    out, summary = local_run
    assert summary["backend"] == "local, 2 workers"
    check_record(out, summary)
    assert_matches_propagate(out, corpus)


def test_resume_skips_complete_jobs_and_reruns_the_rest(corpus, local_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(local_run[0], out)
    manifest = [str(corpus / "jobs.csv"), "--out", str(out), "--skip-bad", "--json"]
    refused = vggts("batch", *manifest, check=False)
    assert refused.returncode == 2 and "holds an earlier batch; pass --resume" in refused.stderr

    (out / "plain" / "exo" / "overlay.mp4").unlink()  # an incomplete job
    kept = {p: p.stat().st_mtime_ns for p in (out / "fill").rglob("*") if p.is_file()}
    # A row whose inputs changed since its journal was written: it fails, the others finish.
    rows = [{"id": job_id, **cells} for job_id, cells in JOBS.items()]
    rows[1] = {**rows[1], "mask": "r1/mask0.png"}
    changed = write_csv(corpus / "changed.csv", rows)
    proc = vggts("batch", str(changed), *manifest[1:], "--resume", check=False)
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout)
    jobs = {j["id"]: j for j in summary["jobs"]}
    assert summary["counts"] == {"done": 5, "failed": 1}
    assert jobs["mid-seed"]["status"] == "failed"
    assert "--mask differs from the journal" in jobs["mid-seed"]["error"]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("vggts: ")]
    assert errors[0].startswith("vggts: job mid-seed (changed.csv:3) failed: ")
    assert errors[-1].startswith("vggts: error: 1 of 6 jobs failed; see ")
    assert {p: p.stat().st_mtime_ns for p in (out / "fill").rglob("*") if p.is_file()} == kept
    assert_matches_propagate(out, corpus, ["plain", "three-cams", "fill", "exo-seed", "matte"])


# --------------------------------------------------------------------------- a real Ray cluster on 127.0.0.1


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: each socket is held until all are bound (a port given back at once may
    be handed out again by the next bind: two of Ray's components on one port, and the head refuses)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


@pytest.fixture(scope="module")
def ray_cluster():
    """`ray start --head` on 127.0.0.1 with 2 CPUs; yields (address, head pid). `--block` keeps the head in
    the foreground, so stopping it (SIGTERM) stops this cluster and no other Ray on the machine."""
    if not HAVE_RAY:
        pytest.skip("ray is not installed (pip install 'vggts[ray]')")
    port, client, agent_http, agent_grpc, runtime_env, metrics = free_ports(6)
    temp = tempfile.mkdtemp(prefix="vggts-ray-")  # short: Ray's socket paths must fit in 107 bytes
    args = [str(RAY), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1"]
    args += ["--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"]
    # Ports of our own, so that this cluster does not collide with another Ray on the machine.
    args += [f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent_http}"]
    args += [f"--dashboard-agent-grpc-port={agent_grpc}", f"--runtime-env-agent-port={runtime_env}"]
    args += [f"--metrics-export-port={metrics}"]
    log = Path(temp) / "head.log"
    # Every process of the cluster loads tests/ray_hooks/sitecustomize.py (a worker can kill itself on cue).
    pythonpath = os.pathsep.join(filter(None, [str(RAY_HOOKS), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath, "VGGTS_TEST_KILL_ONE_WORKER": "1"}
    with log.open("w") as f:
        head = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    try:
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in log.read_text():
            assert head.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield f"127.0.0.1:{port}", head.pid
    finally:
        head.terminate()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)


@needs_ray
def test_ray_cluster_outputs_equal_propagate(corpus, ray_cluster):
    address, _ = ray_cluster
    out = corpus / "ray"
    proc = vggts(
        "batch", str(corpus / "jobs.csv"), "--out", str(out), "--ray", address, "--skip-bad", "--json"
    )
    summary = json.loads(proc.stdout)
    assert summary["backend"] == f"ray {address}, 2 workers on CPU"
    check_record(out, summary)
    assert_matches_propagate(out, corpus)


@needs_ray
def test_killed_ray_worker_loses_no_job(tmp_path, ray_cluster):
    address, _ = ray_cluster
    tmp_path = tmp_path.resolve()
    rec = make_recording(tmp_path / "rec", seconds=2.0, scale=0.5)
    rec.seed_png(tmp_path / "rec" / "mask.png", 0)
    cells = {"engine": "classic", "src": "rec/ego.mp4", "dst": "rec/exo.mp4", "mask": "rec/mask.png"}
    cells["write"] = "rle,overlay,png"
    write_csv(tmp_path / "jobs.csv", [{"id": "one", **cells}, {"id": "two", **cells}])
    out = tmp_path / "out"
    # Both jobs run at once (2 CPUs); the worker of the first to reach 30 journalled frames kills itself
    # (tests/ray_hooks/sitecustomize.py), taking the marker with it.
    out.mkdir()
    marker = out / "kill-one-worker"
    marker.touch()
    batch = subprocess.Popen(
        [sys.executable, "-m", "vggts_cli", "batch", str(tmp_path / "jobs.csv"), "--out", str(out)]
        + ["--ray", address, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = batch.communicate(timeout=300)
    assert not marker.exists(), "no job was caught running"
    assert batch.returncode == 0, stderr

    summary = json.loads(stdout)
    assert summary["counts"] == {"done": 2}
    vggts("propagate", *propagate_args(cells, tmp_path), "--out", str(tmp_path / "ref"))
    expected = files(tmp_path / "ref")
    assert files(out / "one") == expected and files(out / "two") == expected
    assert not list(out.rglob("*.part*"))
