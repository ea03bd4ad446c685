"""Reading the user's seed mask and writing masks as single-channel PNGs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vggts_cli.errors import VggtsError


def load_seed_mask(path: Path, width: int, height: int) -> np.ndarray:
    """Read a seed mask for a `width` x `height` frame -> (height, width) bool.

    Any image OpenCV decodes is accepted: 8 or 16 bits, gray, RGB or RGBA. A pixel is object where any
    colour channel is non-zero, except fully transparent pixels, which are never object (so an RGBA
    cut-out or matte reads as its alpha). Raises VggtsError with one line for a missing or undecodable
    file, a size that differs from the frame, or a mask with no object or no background: the engines need
    both (the learned one, seeded with the whole frame, finds some other object in the next frames).
    """
    path = Path(path)
    if not path.is_file():
        raise VggtsError(f"seed mask {path} does not exist or is not a file")
    # imdecode on the bytes rather than imread: no warning spam from OpenCV and any path encoding works.
    data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise VggtsError(f"seed mask {path} is not an image OpenCV can read (use a PNG)")
    mask_h, mask_w = image.shape[:2]
    if (mask_h, mask_w) != (height, width):
        rotated = (mask_w, mask_h) == (height, width)
        hint = " (it looks rotated: masks must be in display orientation)" if rotated else ""
        raise VggtsError(f"seed mask {path} is {mask_w}x{mask_h} but the frame is {width}x{height}{hint}")
    if image.ndim == 2:
        mask = image != 0
    else:
        mask = np.any(image[..., :3] != 0, axis=-1)
        if image.shape[2] == 4:
            mask &= image[..., 3] != 0
    if not mask.any():
        raise VggtsError(f"seed mask {path} is empty: no non-zero pixel marks the object")
    if mask.all():
        raise VggtsError(
            f"seed mask {path} covers the whole frame: it must leave some background (zero pixels)"
        )
    return mask


def save_mask_png(path: Path, mask: np.ndarray) -> None:
    """Write an (H, W) bool mask as a single-channel 8-bit PNG: 255 inside, 0 outside."""
    # Compression level 1: binary masks still shrink ~50x and encoding stays cheap on long videos.
    ok, data = cv2.imencode(".png", mask.astype(np.uint8) * 255, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise VggtsError(f"could not encode mask PNG {path}")
    Path(path).write_bytes(data.tobytes())
