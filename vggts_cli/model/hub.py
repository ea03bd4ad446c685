"""Known weight files: where they come from, downloading into the Hugging Face cache, and verifying them.

Downloads go through `huggingface_hub.hf_hub_download` into its standard cache, so `HF_HOME`,
`HF_HUB_CACHE` and `HF_HUB_OFFLINE` work as everywhere else. At download time the file's size and sha256
are recorded in a small JSON manifest (`$VGGTS_HOME/weights.json`, default `~/.cache/vggts`), which
`verify` compares against later.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path, PurePosixPath

from huggingface_hub import constants, get_session, hf_hub_download, try_to_load_from_cache
from huggingface_hub.utils import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    are_progress_bars_disabled,
    disable_progress_bars,
    enable_progress_bars,
)

from vggts_cli.errors import VggtsError
from vggts_cli.fsutil import write_text


@dataclass(frozen=True)
class WeightFile:
    """One downloadable weight file: a file in a Hugging Face model repository."""

    name: str
    repo: str
    filename: str
    description: str
    licence: str
    size: str | None = None  # about how much there is to download, where known


WEIGHTS: dict[str, WeightFile] = {
    entry.name: entry
    for entry in (
        WeightFile(
            name="vggt-1b",
            repo="facebook/VGGT-1B",
            filename="model.pt",
            description="VGGT-1B backbone; vggts uses its aggregator and track head",
            licence=(
                "Meta's own VGGT licence, not Apache-2.0: read the model card at "
                "https://huggingface.co/facebook/VGGT-1B (a separate commercial-use checkpoint is "
                "facebook/VGGT-1B-Commercial)"
            ),
            size="5 GB",
        ),
        WeightFile(
            name="vggt-s-head",
            repo="zbbhhh/VGGT-S",
            filename="main_exp.pth",
            description="VGGT-S segmentation head (training checkpoint; only its 'model' entry is read)",
            licence=(
                "the VGGT-S code is Apache-2.0; for the weights' terms check the model card at "
                "https://huggingface.co/zbbhhh/VGGT-S"
            ),
        ),
    )
}

_CHUNK = 8 << 20  # bytes hashed per read
_PROBE_TIMEOUT = 3.0  # seconds the Hub gets to answer before its files count as out of reach
_SHA256_BLOB = re.compile(r"[0-9a-f]{64}")  # HF cache: an LFS blob is named by its sha256


@dataclass(frozen=True)
class Verification:
    """The outcome of `verify`: what the file is and what it was successfully compared with."""

    path: Path
    size: int
    sha256: str
    checked_against: tuple[str, ...]  # empty when there was nothing to compare with


def vggts_home() -> Path:
    """The vggts cache folder: `$VGGTS_HOME`, or `~/.cache/vggts`."""
    return Path(os.environ.get("VGGTS_HOME") or Path.home() / ".cache" / "vggts").expanduser()


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache in use (`HF_HUB_CACHE`, or `$HF_HOME/hub`)."""
    return Path(constants.HF_HUB_CACHE)


def weight_file(name: str) -> WeightFile:
    """The registry entry for `name`; an unknown name raises `VggtsError` listing the known ones."""
    if name not in WEIGHTS:
        raise VggtsError(f"unknown weights {name!r}: known names are {', '.join(WEIGHTS)}")
    return WEIGHTS[name]


def local_path(name: str) -> Path | None:
    """The cached copy of the known weight file `name`, or None when it is not downloaded (no network)."""
    entry = weight_file(name)
    found = try_to_load_from_cache(entry.repo, entry.filename)
    return Path(found) if isinstance(found, str) else None


# progress(file name, bytes hashed since the last call, file size): the CLI draws it; None: silent.
HashProgressFn = Callable[[str, int, int], None]


def download(name: str, progress: HashProgressFn | None = None, force: bool = False) -> Path:
    """Download the known weight file `name` into the Hugging Face cache (a no-op when it is current).

    Returns the cached path and records its size and sha256 in the manifest the first time it is seen.
    `force` downloads again even over a cached (e.g. damaged) copy, and records it afresh.
    Offline (`HF_HUB_OFFLINE=1`), the cached copy is returned or a one-line `VggtsError` says what to do.
    Without `progress`, huggingface_hub's own download bars are off too.
    """
    entry = weight_file(name)
    bars_were_disabled = are_progress_bars_disabled()
    if not progress:
        disable_progress_bars()
    try:
        path = Path(hf_hub_download(entry.repo, entry.filename, force_download=force))
    except LocalEntryNotFoundError:
        raise VggtsError(_not_available(entry)) from None
    except GatedRepoError:
        raise VggtsError(
            f"{entry.repo} is gated: accept its terms on https://huggingface.co/{entry.repo}, then log in "
            "with `hf auth login` (or set HF_TOKEN) and retry"
        ) from None
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError):
        raise VggtsError(
            f"{entry.repo} has no file {entry.filename} on the Hugging Face Hub (moved or private?); "
            f"download it by hand and pass its path instead of {name!r}"
        ) from None
    except (HfHubHTTPError, OSError, ValueError) as err:  # ValueError: force_download while offline
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise VggtsError(f"downloading {entry.repo} {entry.filename} failed: {reason}") from None
    finally:
        if not progress and not bars_were_disabled:
            enable_progress_bars()
    if force or _record_for(path) is None:
        _write_record(entry, path, progress)
    return path


def resolve(names: Sequence[str], needed_by: str) -> list[Path]:
    """The local copies of the known weight files `names`, which `needed_by` (e.g. 'vggt-s-1b') needs: the
    cached ones as they are, the others downloaded.

    When some are not cached and HF_HUB_OFFLINE is set or the Hub does not answer a quick probe, one line
    names every missing file at once, instead of huggingface_hub retrying each download for most of a minute.
    """
    entries = [weight_file(name) for name in names]
    cached = [local_path(entry.name) for entry in entries]
    missing = [entry for entry, path in zip(entries, cached, strict=True) if path is None]
    if missing and (constants.HF_HUB_OFFLINE or not hub_reachable()):
        commands = " and ".join(f"`vggts weights download {entry.name}`" for entry in missing)
        raise VggtsError(
            f"{_why_missing(missing)}, so {needed_by!r} cannot be loaded: run {commands} where the Hub "
            "can be reached and point HF_HUB_CACHE at that cache, or pass --model a vggts model file"
        )
    return [path or download(entry.name) for entry, path in zip(entries, cached, strict=True)]


def hub_reachable(timeout: float = _PROBE_TIMEOUT) -> bool:
    """Whether the Hub endpoint (HF_ENDPOINT) answers one HTTP request, through huggingface_hub's own
    session (so its proxy settings apply), within `timeout` seconds. Any answer counts, even an error."""
    try:
        get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception:  # requests' and httpx's errors share no base class but Exception
        return False
    return True


def verify(path: str | PathLike[str], progress: HashProgressFn | None = None) -> Verification:
    """Hash `path` (size + sha256) and compare it with its download record and, in the Hugging Face cache,
    with the sha256 in its blob's file name. A mismatch raises a one-line `VggtsError`.

    `progress` hears of the hashing as it goes.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise VggtsError(f"{path}: no such file")
    size = path.stat().st_size
    record = _record_for(path)
    if record is not None and record["size"] != size:
        raise VggtsError(
            f"{path}: {size} bytes, but {record['size']} were downloaded for {record['name']}: the file is "
            f"damaged; run `vggts weights download {record['name']} --force`"
        )
    sha256 = _sha256(path, progress)
    expected = []  # (sha256, what it comes from)
    if record is not None:
        expected.append((record["sha256"], f"the download record of {record['name']}"))
    blob = path.resolve()
    if blob.parent.name == "blobs" and _SHA256_BLOB.fullmatch(blob.name):
        expected.append((blob.name, "its Hugging Face blob name"))
    fix = f"vggts weights download {record['name'] if record else 'NAME'} --force"
    for digest, what in expected:
        if digest != sha256:
            raise VggtsError(
                f"{path}: sha256 {sha256} does not match {what} ({digest}): the file is damaged; "
                f"download it again (`{fix}`)"
            )
    return Verification(
        path=path, size=size, sha256=sha256, checked_against=tuple(what for _, what in expected)
    )


def _not_available(entry: WeightFile) -> str:
    """One line for `download`: `entry` is not cached and cannot be downloaded now."""
    fix = (
        f"run `vggts weights download {entry.name}` online"
        if constants.HF_HUB_OFFLINE
        else "check the connection (or HF_ENDPOINT)"
    )
    return (
        f"{_why_missing([entry])}: {fix}, or pass the path of a local copy of {entry.filename} instead of "
        f"{entry.name!r}"
    )


def _why_missing(entries: Sequence[WeightFile]) -> str:
    """Which weight files are not in the cache, and why they cannot be downloaded now."""
    files = " and ".join(f"{e.filename} of {e.repo}" + (f" ({e.size})" if e.size else "") for e in entries)
    verb = "are" if len(entries) > 1 else "is"
    why = (
        "HF_HUB_OFFLINE is set"
        if constants.HF_HUB_OFFLINE
        else f"the Hub ({constants.ENDPOINT}) cannot be reached"
    )
    return f"{files} {verb} not in the Hugging Face cache {hf_cache_dir()} and {why}"


def _sha256(path: Path, progress: HashProgressFn | None) -> str:
    digest = hashlib.sha256()
    buffer = memoryview(bytearray(_CHUNK))
    size = path.stat().st_size
    with path.open("rb") as f:
        while n := f.readinto(buffer):
            digest.update(buffer[:n])
            if progress:
                progress(path.name, n, size)
    return digest.hexdigest()


def _manifest_path() -> Path:
    return vggts_home() / "weights.json"


def _read_manifest() -> dict[str, dict]:
    path = _manifest_path()
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise VggtsError(f"{path}: unreadable weights manifest ({err}); delete it to start afresh") from None
    fields = {"path", "size", "sha256"}
    if not isinstance(manifest, dict) or not all(
        isinstance(record, dict) and fields <= record.keys() for record in manifest.values()
    ):
        raise VggtsError(f"{path}: not a weights manifest; delete it to start afresh")
    return manifest


def _record_for(path: Path) -> dict | None:
    """The manifest record whose file is `path` (symlinks followed), with its `name` added."""
    target = path.resolve()
    for name, record in _read_manifest().items():
        if Path(record["path"]).resolve() == target:
            return {"name": name, **record}
    return None


def _write_record(entry: WeightFile, path: Path, progress: HashProgressFn | None) -> None:
    """Record size, sha256, repo and revision of a downloaded file; the manifest is replaced atomically."""
    # hf_hub_download returns <cache>/models--org--repo/snapshots/<commit>/<filename>
    revision = path.parents[len(PurePosixPath(entry.filename).parts) - 1].name
    manifest = _read_manifest()
    manifest[entry.name] = {
        "repo": entry.repo,
        "filename": entry.filename,
        "revision": revision,
        "path": str(path),
        "size": path.stat().st_size,
        "sha256": _sha256(path, progress),
    }
    final = _manifest_path()
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_text(final, json.dumps(manifest, indent=2) + "\n")
    except OSError as err:
        raise VggtsError(f"{final}: cannot write the weights manifest ({err.strerror or err})") from None
