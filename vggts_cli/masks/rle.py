"""COCO run-length encoding of binary masks (pycocotools), in the JSON-ready form masks.json stores."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as coco_mask


def encode(mask: np.ndarray) -> dict:
    """(H, W) bool mask -> `{"size": [H, W], "counts": str}` (column-major runs, compact COCO string)."""
    if mask.ndim != 2:
        raise ValueError(f"expected an (H, W) mask, got shape {mask.shape}")
    # pycocotools reads the buffer column by column, so it insists on a Fortran-ordered uint8 array.
    rle = coco_mask.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": rle["counts"].decode("ascii")}


def decode(rle: dict) -> np.ndarray:
    """`{"size": [H, W], "counts": str | bytes}` -> (H, W) bool mask."""
    counts = rle["counts"]
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return coco_mask.decode({"size": list(rle["size"]), "counts": counts}).astype(bool)
