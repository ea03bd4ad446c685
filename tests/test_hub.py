"""Weights registry, Hugging Face cache lookup, verification and the `vggts weights` commands, offline.

Each test builds a Hugging Face cache by hand in tmp_path (refs/main, snapshots/<commit>/<file> as a
symlink to blobs/<sha256>) and runs with HF_HUB_OFFLINE=1, so the real huggingface_hub code finds it.
"""

from __future__ import annotations

import hashlib
import http.server
import importlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants

from vggts_cli.cli.weights import app
from vggts_cli.errors import VggtsError
from vggts_cli.model import hub
from vggts_cli.model.checkpoints import read_state_dict

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty, offline Hugging Face hub cache and vggts home; yields the hub cache folder."""
    with monkeypatch.context() as env:
        env.setenv("HF_HOME", str(tmp_path / "hf"))
        env.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
        env.setenv("HF_HUB_OFFLINE", "1")
        env.setenv("VGGTS_HOME", str(tmp_path / "vggts"))
        importlib.reload(constants)  # huggingface_hub reads its environment variables at import time
        yield tmp_path / "hf" / "hub"
    importlib.reload(constants)


def _put(cache: Path, name: str, content: bytes) -> Path:
    """Place `content` as the weight file `name` the way huggingface_hub caches an LFS file."""
    entry = hub.WEIGHTS[name]
    repo = cache / f"models--{entry.repo.replace('/', '--')}"
    blob = repo / "blobs" / hashlib.sha256(content).hexdigest()
    blob.parent.mkdir(parents=True)
    blob.write_bytes(content)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT / entry.filename
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
    return snapshot


def _checkpoint_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save({"model": {"mask_decoder.mask_tokens.weight": torch.randn(1, 128)}, "epoch": 11}, buffer)
    return buffer.getvalue()


def _one_line(err: pytest.ExceptionInfo[VggtsError]) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_registry_names_repos_and_licences() -> None:
    assert (hub.WEIGHTS["vggt-1b"].repo, hub.WEIGHTS["vggt-1b"].filename) == ("facebook/VGGT-1B", "model.pt")
    assert (hub.WEIGHTS["vggt-s-head"].repo, hub.WEIGHTS["vggt-s-head"].filename) == (
        "zbbhhh/VGGT-S",
        "main_exp.pth",
    )
    assert "VGGT-1B-Commercial" in hub.WEIGHTS["vggt-1b"].licence
    assert (
        "Apache-2.0" in hub.WEIGHTS["vggt-s-head"].licence
        and "model card" in hub.WEIGHTS["vggt-s-head"].licence
    )


def test_download_offline_serves_the_cache_and_records_it(cache: Path, tmp_path: Path) -> None:
    content = _checkpoint_bytes()
    snapshot = _put(cache, "vggt-s-head", content)
    assert hub.local_path("vggt-s-head") == snapshot

    assert hub.download("vggt-s-head", progress=False) == snapshot
    manifest = json.loads((tmp_path / "vggts" / "weights.json").read_text())
    assert manifest["vggt-s-head"] == {
        "repo": "zbbhhh/VGGT-S",
        "filename": "main_exp.pth",
        "revision": COMMIT,
        "path": str(snapshot),
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    assert hub.resolve(["vggt-s-head"], "a test") == [snapshot]
    assert list(read_state_dict(snapshot)) == ["mask_decoder.mask_tokens.weight"]


def test_resolve_rejects_unknown_names(cache: Path) -> None:
    with pytest.raises(VggtsError, match="unknown weights 'nope.pth'") as err:
        hub.resolve(["vggt-1b", "nope.pth"], "a test")
    assert "vggt-1b, vggt-s-head" in _one_line(err)


def test_offline_and_missing_says_how_to_get_it(cache: Path) -> None:
    assert hub.local_path("vggt-1b") is None
    with pytest.raises(VggtsError, match="HF_HUB_OFFLINE") as err:
        hub.download("vggt-1b", progress=False)
    message = _one_line(err)
    assert "vggts weights download vggt-1b" in message and "local copy of model.pt" in message
    with pytest.raises(VggtsError, match="HF_HUB_OFFLINE"):
        hub.resolve(["vggt-1b"], "a test")


def test_resolve_names_every_missing_file_at_once(cache: Path) -> None:
    with pytest.raises(VggtsError) as err:
        hub.resolve(["vggt-1b", "vggt-s-head"], "vggt-s-1b")
    assert _one_line(err) == (
        f"model.pt of facebook/VGGT-1B (5 GB) and main_exp.pth of zbbhhh/VGGT-S are not in the Hugging Face "
        f"cache {cache} and HF_HUB_OFFLINE is set, so 'vggt-s-1b' cannot be loaded: run `vggts weights "
        "download vggt-1b` and `vggts weights download vggt-s-head` where the Hub can be reached and point "
        "HF_HUB_CACHE at that cache, or pass --model a vggts model file"
    )
    snapshot = _put(cache, "vggt-s-head", _checkpoint_bytes())
    with pytest.raises(VggtsError, match=r"^model\.pt of facebook/VGGT-1B \(5 GB\) is not in ") as err:
        hub.resolve(["vggt-1b", "vggt-s-head"], "vggt-s-1b")  # the cached head is not asked for
    assert "main_exp.pth" not in _one_line(err)
    _put(cache, "vggt-1b", _checkpoint_bytes())
    assert hub.resolve(["vggt-1b", "vggt-s-head"], "vggt-s-1b")[1] == snapshot


def _free_port() -> int:
    """A local TCP port that nothing listens on (just released by the OS)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def online(cache: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """The empty cache without HF_HUB_OFFLINE; yields `endpoint(url)`, which points the Hub at `url`."""
    with monkeypatch.context() as env:

        def endpoint(url: str) -> None:
            env.setenv("HF_ENDPOINT", url)
            importlib.reload(constants)

        env.delenv("HF_HUB_OFFLINE")
        yield endpoint
    importlib.reload(constants)


def test_hub_reachable_is_any_http_answer(online) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        online(f"http://127.0.0.1:{server.server_port}")
        assert hub.hub_reachable()  # the server answers HEAD with 501: it is there
    finally:
        server.shutdown()
        server.server_close()
    online(f"http://127.0.0.1:{_free_port()}")
    assert not hub.hub_reachable()


def test_an_unreachable_hub_fails_before_any_download(online, cache: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    online(url)
    with pytest.raises(VggtsError) as err:
        hub.resolve(["vggt-1b", "vggt-s-head"], "vggt-s-1b")
    message = _one_line(err)
    assert f"are not in the Hugging Face cache {cache} and the Hub ({url}) cannot be reached, so" in message
    assert not list(cache.glob("models--*"))  # no download was started


def test_cli_model_1b_without_network_fails_at_once_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "VGGTS_"))}
    env |= {
        "HF_HOME": str(tmp_path / "hf"),  # an empty cache
        "VGGTS_HOME": str(tmp_path / "vggts"),
        "HF_ENDPOINT": f"http://127.0.0.1:{_free_port()}",  # nothing there: the Hub is out of reach
    }
    out = tmp_path / "out"
    examples = (
        "--src",
        EXAMPLES / "ego.mp4",
        "--dst",
        EXAMPLES / "exo.mp4",
        "--mask",
        EXAMPLES / "ego_mask.png",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "vggts_cli", "propagate", *map(str, examples), "--out", str(out)]
        + ["--engine", "vggts", "--model", "vggt-s-1b"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(
        "vggts: error: model.pt of facebook/VGGT-1B (5 GB) and main_exp.pth of zbbhhh/VGGT-S are not in the "
        f"Hugging Face cache {tmp_path / 'hf' / 'hub'} and the Hub ("
    )
    assert "`vggts weights download vggt-1b` and `vggts weights download vggt-s-head`" in proc.stderr
    assert "point HF_HUB_CACHE at that cache" in proc.stderr
    assert not out.exists()


def test_force_download_needs_the_network(cache: Path) -> None:
    _put(cache, "vggt-1b", _checkpoint_bytes())
    with pytest.raises(VggtsError, match="offline") as err:
        hub.download("vggt-1b", progress=False, force=True)
    _one_line(err)


def test_verify_checks_record_and_blob_name(cache: Path) -> None:
    content = _checkpoint_bytes()
    snapshot = _put(cache, "vggt-1b", content)
    hub.download("vggt-1b", progress=False)
    result = hub.verify(snapshot)
    assert (result.size, result.sha256) == (len(content), hashlib.sha256(content).hexdigest())
    assert result.checked_against == ("the download record of vggt-1b", "its Hugging Face blob name")


def test_verify_fails_on_a_corrupted_file(cache: Path) -> None:
    content = _checkpoint_bytes()
    snapshot = _put(cache, "vggt-1b", content)
    hub.download("vggt-1b", progress=False)
    damaged = bytearray(content)
    damaged[len(damaged) // 2] ^= 0xFF
    snapshot.write_bytes(damaged)  # writes through the symlink into the blob, same size
    with pytest.raises(VggtsError, match="does not match the download record of vggt-1b") as err:
        hub.verify(snapshot)
    assert str(snapshot) in _one_line(err) and "vggts weights download vggt-1b --force" in str(err.value)

    snapshot.write_bytes(content[:100])
    with pytest.raises(VggtsError, match=f"100 bytes, but {len(content)} were downloaded") as err:
        hub.verify(snapshot)
    _one_line(err)


def test_verify_without_record_uses_the_blob_name(cache: Path, tmp_path: Path) -> None:
    content = _checkpoint_bytes()
    snapshot = _put(cache, "vggt-1b", content)  # cached by someone else: no vggts record
    assert hub.verify(snapshot).checked_against == ("its Hugging Face blob name",)
    snapshot.write_bytes(content + b"x")
    with pytest.raises(VggtsError, match="does not match its Hugging Face blob name") as err:
        hub.verify(snapshot)
    _one_line(err)

    plain = tmp_path / "copy.pt"
    plain.write_bytes(content)
    assert hub.verify(plain).checked_against == ()


# ---- the `vggts weights` commands ----------------------------------------------------------------------


def test_cli_list_shows_cached_and_missing(cli, cache: Path) -> None:
    snapshot = _put(cache, "vggt-1b", _checkpoint_bytes())
    result = cli(app, "list")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"Hugging Face cache: {cache} (offline" in out
    assert (
        "vggt-1b: facebook/VGGT-1B model.pt (5 GB)" in out
        and "vggt-s-head: zbbhhh/VGGT-S main_exp.pth" in out
    )
    assert f"downloaded: {snapshot} (" in out
    assert "not downloaded: run `vggts weights download vggt-s-head`" in out
    # The shipped model first (issue: `weights list` did not show it), then the two downloadable files.
    assert "vggt-s-lite: shipped inside vggts" in out and "installed: " in out
    assert out.count("licence:") == 3


def test_cli_path(cli, cache: Path) -> None:
    snapshot = _put(cache, "vggt-1b", _checkpoint_bytes())
    result = cli(app, "path", "vggt-1b")
    assert (result.exit_code, result.stdout) == (0, f"{snapshot}\n")

    result = cli(app, "path", "vggt-s-head")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("vggts: error: vggt-s-head is not downloaded")
    assert result.stderr.count("\n") == 1


def test_cli_download_and_verify(cli, cache: Path) -> None:
    content = _checkpoint_bytes()
    snapshot = _put(cache, "vggt-s-head", content)
    result = cli(app, "download", "vggt-s-head", "--quiet")
    assert (result.exit_code, result.stdout) == (0, f"{snapshot}\n")

    result = cli(app, "verify", "vggt-s-head")
    assert result.exit_code == 0, result.output
    assert hashlib.sha256(content).hexdigest() in result.stdout
    assert "ok: matches the download record of vggt-s-head and its Hugging Face blob name" in result.stdout

    snapshot.write_bytes(content[:-1] + bytes([content[-1] ^ 1]))
    result = cli(app, "verify", str(snapshot))
    assert result.exit_code == 1
    assert result.stderr.startswith("vggts: error: ") and result.stderr.count("\n") == 1


def test_cli_errors_are_one_line(cli, cache: Path) -> None:
    for args in (
        ["verify", "vggt-1b"],
        ["verify", "no-such-thing"],
        ["download", "vggt-1b"],
        ["path", "bogus"],
    ):
        result = cli(app, *args)
        assert result.exit_code == 1, args
        assert result.stderr.startswith("vggts: error: ") and result.stderr.count("\n") == 1, args
