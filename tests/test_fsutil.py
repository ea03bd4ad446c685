"""The one partial-write-then-rename helper, and the one cache helper."""

from __future__ import annotations

import pytest

from vggts_cli.cache import LruCache
from vggts_cli.fsutil import PartialOutput, final_path, partial_path, write_text


def test_partial_output_renames_when_the_block_ends(tmp_path) -> None:
    final = tmp_path / "out.json"
    with PartialOutput(final) as partial:
        assert partial == partial_path(final) == tmp_path / "out.part.json"
        partial.write_text("done")
        assert not final.exists()
    assert final.read_text() == "done" and not partial.exists()


@pytest.mark.parametrize("name", ["overlay.mp4", "masks", "take.01.json", "journal.jsonl"])
def test_final_path_undoes_partial_path(tmp_path, name) -> None:
    # An error about a partial file is reported under the name the user will look for.
    final = tmp_path / "ego" / name
    assert final_path(partial_path(final)) == final
    assert final_path(final) == final  # a path that is no partial one stays as it is


def test_partial_output_removes_the_partial_file_on_error(tmp_path) -> None:
    final = tmp_path / "out.json"
    final.write_text("older")
    with pytest.raises(RuntimeError), PartialOutput(final) as partial:
        partial.write_text("half")
        raise RuntimeError("killed half way")
    assert final.read_text() == "older" and not partial_path(final).exists()


def test_write_text_leaves_no_partial_file_when_writing_fails(tmp_path) -> None:
    final = tmp_path / "missing-folder" / "batch.json"
    with pytest.raises(OSError):
        write_text(final, "{}")
    assert not partial_path(final).exists()


def test_fresh_partial_output_starts_clean(tmp_path) -> None:
    final = tmp_path / "masks"
    partial_path(final).mkdir()
    (partial_path(final) / "000000.png").write_bytes(b"stale")
    output = PartialOutput(final, fresh=True)
    assert not output.path.exists()
    output.path.mkdir()
    output.commit()
    assert final.is_dir() and not any(final.iterdir())


def test_lru_cache_evicts_the_least_recently_used() -> None:
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a use: b is now the oldest
    cache.put("c", 3)
    assert "b" not in cache and cache.peek("a") == 1 and cache.peek("c") == 3
    assert cache.peek("a") == 1  # a peek is no use: a stays the oldest
    cache.put("d", 4)
    assert "a" not in cache and len(cache) == 2
    cache.resize(1)
    assert "c" not in cache and cache.get("d") == 4
