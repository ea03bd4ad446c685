"""Seed-mask reading, COCO RLE and mask helpers, checked against real files and pycocotools itself."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as coco_mask

from vggts_cli.errors import VggtsError
from vggts_cli.masks import ops, rle
from vggts_cli.masks.io import load_seed_mask, save_mask_png


def _blob(height: int = 48, width: int = 64) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[10:30, 20:45] = True
    mask[15:20, 25:30] = False  # a hole
    return mask


# --- RLE ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rle_round_trip_matches_pycocotools(seed: int) -> None:
    mask = np.random.default_rng(seed).random((37, 53)) > 0.6
    encoded = rle.encode(mask)
    assert encoded["size"] == [37, 53]
    assert isinstance(encoded["counts"], str)
    # Same string pycocotools itself produces, and pycocotools decodes ours (after a JSON round trip).
    reference = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert encoded["counts"] == reference["counts"].decode("ascii")
    loaded = json.loads(json.dumps(encoded))
    np.testing.assert_array_equal(coco_mask.decode(loaded).astype(bool), mask)
    np.testing.assert_array_equal(rle.decode(loaded), mask)
    assert coco_mask.area(reference) == mask.sum()


def test_rle_empty_mask_is_a_valid_string() -> None:
    encoded = rle.encode(np.zeros((20, 30), dtype=bool))
    assert encoded["counts"]
    decoded = rle.decode(encoded)
    assert decoded.shape == (20, 30) and decoded.dtype == bool and not decoded.any()


def test_rle_rejects_non_2d() -> None:
    with pytest.raises(ValueError):
        rle.encode(np.zeros((2, 3, 4), dtype=bool))


# --- ops ---------------------------------------------------------------------------------------------


def test_bbox() -> None:
    box = ops.bbox(_blob())
    assert (box.y0, box.y1, box.x0, box.x1) == (10, 30, 20, 45)
    assert ops.bbox(np.zeros((5, 5), dtype=bool)) is None


def test_dilate_is_a_disc_of_the_margin() -> None:
    mask = np.zeros((41, 41), dtype=bool)
    mask[20, 20] = True
    grown = ops.dilate(mask, 6)
    yy, xx = np.mgrid[:41, :41]
    distance = np.hypot(yy - 20, xx - 20)
    assert grown[distance <= 6].all()
    assert not grown[distance > 6.01].any()
    np.testing.assert_array_equal(ops.dilate(mask, 0), mask)


def test_dilate_at_the_frame_edge_and_empty() -> None:
    mask = np.zeros((30, 40), dtype=bool)
    mask[0, 39] = True
    grown = ops.dilate(mask, 3)
    assert grown[3, 39] and grown[0, 36] and not grown[4, 39]
    assert not ops.dilate(np.zeros((30, 40), dtype=bool), 5).any()


def test_dilated_union_crop() -> None:
    a, b = np.zeros((50, 60), dtype=bool), np.zeros((50, 60), dtype=bool)
    a[10, 10] = True
    b[30, 40] = True
    box, crop = ops.dilated_union([a, b], 2)
    assert (box.y0, box.y1, box.x0, box.x1) == (8, 33, 8, 43)
    full = np.zeros_like(a)
    full[box.slices] = crop
    np.testing.assert_array_equal(full, ops.dilate(a, 2) | ops.dilate(b, 2))
    assert ops.dilated_union([np.zeros_like(a)], 2) is None


def test_iou() -> None:
    a = np.zeros((10, 10), dtype=bool)
    b = a.copy()
    assert ops.iou(a, b) == 1.0
    a[:, :5] = True
    b[:, 3:8] = True
    assert ops.iou(a, b) == pytest.approx(20 / 80)
    assert ops.iou(a, np.zeros_like(a)) == 0.0


# --- seed masks --------------------------------------------------------------------------------------


def test_load_gray_and_save_png(tmp_path) -> None:
    mask = _blob()
    path = tmp_path / "seed.png"
    save_mask_png(path, mask)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.ndim == 2 and raw.dtype == np.uint8
    assert set(np.unique(raw)) == {0, 255}
    np.testing.assert_array_equal(load_seed_mask(path, 64, 48), mask)


def test_load_16bit_and_colour(tmp_path) -> None:
    mask = _blob()
    sixteen = tmp_path / "m16.png"
    cv2.imwrite(str(sixteen), mask.astype(np.uint16) * 1)  # value 1 of 65535 still counts
    np.testing.assert_array_equal(load_seed_mask(sixteen, 64, 48), mask)
    colour = np.zeros((48, 64, 3), dtype=np.uint8)
    colour[mask] = (0, 0, 200)  # object painted in a single channel
    path = tmp_path / "rgb.png"
    cv2.imwrite(str(path), colour)
    np.testing.assert_array_equal(load_seed_mask(path, 64, 48), mask)


def test_load_rgba_ignores_transparent_pixels(tmp_path) -> None:
    mask = _blob()
    rgba = np.full((48, 64, 4), 255, dtype=np.uint8)  # white everywhere ...
    rgba[..., 3] = mask * 255  # ... but only the object is opaque
    path = tmp_path / "cutout.png"
    cv2.imwrite(str(path), rgba)
    np.testing.assert_array_equal(load_seed_mask(path, 64, 48), mask)


def _one_line_error(path, width: int, height: int) -> str:
    with pytest.raises(VggtsError) as info:
        load_seed_mask(path, width, height)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_seed_mask_errors(tmp_path) -> None:
    path = tmp_path / "seed.png"
    save_mask_png(path, _blob())
    message = _one_line_error(path, 640, 480)
    assert "64x48" in message and "640x480" in message
    assert "rotated" in _one_line_error(path, 48, 64)

    empty = tmp_path / "empty.png"
    save_mask_png(empty, np.zeros((48, 64), dtype=bool))
    assert "empty" in _one_line_error(empty, 64, 48)
    full = tmp_path / "full.png"
    save_mask_png(full, np.ones((48, 64), dtype=bool))
    assert "covers the whole frame" in _one_line_error(full, 64, 48)

    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    assert "not an image" in _one_line_error(text, 64, 48)
    zero_bytes = tmp_path / "zero.png"
    zero_bytes.write_bytes(b"")
    assert "not an image" in _one_line_error(zero_bytes, 64, 48)
    assert "does not exist" in _one_line_error(tmp_path / "missing.png", 64, 48)
