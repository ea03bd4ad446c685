"""How frames enter the learned model: letterbox, focus windows, and their way back to the frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vggts_cli.engines.learned.focus import (
    FOCUS_MAX,
    FOCUS_MIN,
    FOCUS_ZOOM,
    KEEP_MAX,
    focus_crop,
    search_box,
    still_fits,
)
from vggts_cli.geometry import OUTSIDE_LOGIT, PAD_VALUE, Box, Framing, Letterbox, SquareCrop, bbox

EXO_HW = (540, 960)


def test_letterbox_round_trip() -> None:
    box = Letterbox.fit((120, 90), 224)
    assert box.content_hw == (224, 168)
    image = np.full((120, 90, 3), 7, dtype=np.uint8)
    canvas = box.image(image)
    assert canvas.shape == (224, 224, 3)
    assert (canvas[:, :168] == 7).all() and (canvas[:, 168:] == PAD_VALUE).all()
    logits = torch.full((224, 224), -5.0)
    logits[:, :168] = 3.0  # image part positive, padding negative: nothing of the padding comes back
    frame_logits = box.unmap_logits(logits)
    assert frame_logits.shape == (120, 90) and (frame_logits == 3.0).all()


def test_letterbox_keeps_thin_objects() -> None:
    box = Letterbox.fit((1000, 2000), 224)
    mask = np.zeros((1000, 2000), dtype=bool)
    mask[500, 100:900] = True  # one pixel high: less than a tenth of a model pixel
    mapped = box.mask(mask)
    assert mapped.shape == (224, 224) and mapped.any()
    assert not mapped[112:].any()  # nothing in the padding


def test_small_object_gets_a_window_zoom_times_its_size_centred_on_it() -> None:
    box = Box(500, 200, 580, 260)  # 80 × 60 px
    window = focus_crop(box, EXO_HW)
    assert window is not None
    assert window.side == round(FOCUS_ZOOM * 80)
    assert (window.x1 + window.x2) / 2 == pytest.approx(539.5, abs=1)
    assert (window.y1 + window.y2) / 2 == pytest.approx(229.5, abs=1)


def test_tiny_object_gets_the_smallest_window() -> None:
    window = focus_crop(Box(100, 100, 103, 103), EXO_HW)
    assert window is not None and window.side == round(FOCUS_MIN * 540)


def test_window_is_shifted_inside_the_frame() -> None:
    window = focus_crop(Box(950, 530, 960, 540), EXO_HW)  # the bottom-right corner
    assert window is not None
    assert window.x2 == 960 and window.y2 == 540 and window.x1 >= 0 and window.y1 >= 0


def test_large_object_is_seen_whole_unless_already_focused() -> None:
    side = int(FOCUS_MAX * 540 / FOCUS_ZOOM) + 10  # its window would pass FOCUS_MAX of the shorter side
    box = Box(300, 100, 300 + side, 100 + side)
    assert focus_crop(box, EXO_HW) is None
    kept = focus_crop(box, EXO_HW, KEEP_MAX)
    assert kept is not None and kept.side <= 540


def test_a_window_is_kept_while_the_object_stays_well_inside() -> None:
    window = focus_crop(Box(500, 200, 580, 260), EXO_HW)
    assert window is not None
    assert still_fits(window, Box(505, 203, 585, 263))  # moved a few pixels
    assert not still_fits(window, Box(570, 200, 650, 260))  # near the window's right edge
    assert not still_fits(window, Box(440, 150, 640, 350))  # grew 2.5×: the window would be too tight
    assert not still_fits(window, Box(530, 220, 550, 235))  # shrank 4×: zoom in again


def test_an_edge_on_the_frame_border_needs_no_margin() -> None:
    window = focus_crop(Box(0, 200, 30, 230), EXO_HW)
    assert window is not None and window.x1 == 0
    assert still_fits(window, Box(0, 201, 30, 231))


def test_framing_through_a_window_round_trip() -> None:
    window = SquareCrop(x1=400, y1=100, side=200, frame_h=540, frame_w=960)
    framing = Framing(EXO_HW, window, 112)
    image = np.zeros((540, 960, 3), dtype=np.uint8)
    image[100:300, 400:600] = 200
    model_input = framing.image(image)
    assert model_input.shape == (112, 112, 3) and (model_input == 200).all()  # the window fills the input
    mask = np.zeros(EXO_HW, dtype=bool)
    mask[150:250, 450:550] = True
    mask[0:10, 0:10] = True  # outside the window: dropped
    mapped = framing.mask(mask)
    assert mapped.shape == (112, 112) and mapped[28:84, 28:84].all() and mapped.sum() == 56 * 56
    frame_logits = framing.unmap_logits(torch.full((112, 112), 5.0))
    assert frame_logits.shape == EXO_HW
    assert (frame_logits[100:300, 400:600] == 5.0).all()
    inside = torch.zeros(EXO_HW, dtype=torch.bool)
    inside[100:300, 400:600] = True
    assert (frame_logits[~inside] == OUTSIDE_LOGIT).all()


def test_whole_framing_is_the_letterbox() -> None:
    framing = Framing((120, 90), None, 224)
    assert framing.letterbox == Letterbox.fit((120, 90), 224)


def test_search_box_follows_the_best_logit() -> None:
    logits = torch.full(EXO_HW, -8.0)
    logits[10:20, 10:30] = 1.0  # a weak blob
    logits[300:340, 600:650] = 4.0  # the strongest one
    assert search_box(logits) == Box(600, 300, 650, 340)


def test_search_box_without_a_positive_logit_uses_the_best_band() -> None:
    logits = torch.full(EXO_HW, -20.0)
    logits[50:60, 70:75] = -3.0
    logits[55, 72] = -2.5
    assert search_box(logits) == Box(70, 50, 75, 60)


def test_bbox() -> None:
    mask = np.zeros((10, 12), dtype=bool)
    assert bbox(mask) is None
    mask[2:5, 3:9] = True
    assert bbox(mask) == Box(3, 2, 9, 5)
