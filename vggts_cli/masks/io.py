"""Reading the user's seed masks (one object or several) and writing masks as single-channel PNGs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from vggts_cli.errors import VggtsError
from vggts_cli.fsutil import unique_names
from vggts_cli.masks.objects import TrackedObject


def _read_image(path: Path, width: int, height: int) -> np.ndarray:
    """The mask file's pixels as decoded (any depth and channel count), checked against the frame size."""
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
    return image


def _marked(image: np.ndarray) -> np.ndarray:
    """Object where any colour channel is non-zero, except fully transparent pixels."""
    if image.ndim == 2:
        return image != 0
    mask = np.any(image[..., :3] != 0, axis=-1)
    if image.shape[2] == 4:
        mask &= image[..., 3] != 0
    return mask


def _binary(path: Path, image: np.ndarray) -> np.ndarray:
    """`_marked`, with some object and some background."""
    mask = _marked(image)
    if not mask.any():
        raise VggtsError(f"seed mask {path} is empty: no non-zero pixel marks the object")
    if mask.all():
        raise VggtsError(
            f"seed mask {path} covers the whole frame: it must leave some background (zero pixels)"
        )
    return mask


def load_seed_mask(path: Path, width: int, height: int) -> np.ndarray:
    """Read a seed mask for a `width` x `height` frame -> (height, width) bool.

    Any image OpenCV decodes is accepted: 8 or 16 bits, gray, RGB or RGBA. A pixel is object where any
    colour channel is non-zero, except fully transparent pixels, which are never object (so an RGBA
    cut-out or matte reads as its alpha). Raises VggtsError with one line for a missing or undecodable
    file, a size that differs from the frame, or a mask with no object or no background: the engines need
    both (the learned one, seeded with the whole frame, finds some other object in the next frames).
    """
    return _binary(path, _read_image(path, width, height))


def is_label_map(image: np.ndarray) -> bool:
    """A single-channel image whose non-zero pixels hold several values, none of them the format's white
    (255 or 65535): white marks a binary mask, whose anti-aliased edges hold other values too."""
    if image.ndim != 2:
        return False
    values = np.unique(image[image != 0])
    return len(values) > 1 and values[-1] != np.iinfo(image.dtype).max


def load_seed_objects(
    paths: Sequence[Path], width: int, height: int
) -> tuple[np.ndarray, tuple[TrackedObject, ...]]:
    """The objects of the seed frame -> ((O, height, width) bool masks, their ids and names).

    Several files: one binary mask each (as `load_seed_mask` reads them), ids 1..O, named by file stem.
    One file: a label map (`is_label_map`: 0 = background, each id one object, named object-<id>), or a
    binary mask of one object.
    """
    if len(paths) == 1:
        image = _read_image(paths[0], width, height)
        if is_label_map(image):
            if image.all():
                raise VggtsError(
                    f"seed mask {paths[0]} labels every pixel: it must leave some background (0)"
                )
            ids = [int(v) for v in np.unique(image[image != 0])]
            masks = np.stack([image == i for i in ids])
            return masks, tuple(TrackedObject(i, f"object-{i}") for i in ids)
        return _binary(paths[0], image)[None], (TrackedObject(1, Path(paths[0]).stem),)
    masks = np.stack([load_seed_mask(p, width, height) for p in paths])
    return masks, tuple(
        TrackedObject(n, name) for n, name in enumerate(unique_names([Path(p).stem for p in paths]), start=1)
    )


def load_prompt_masks(
    path: Path, width: int, height: int, objects: Sequence[TrackedObject]
) -> tuple[np.ndarray, np.ndarray]:
    """A prompt's masks for `objects` -> ((O, height, width) bool, (O,) bool: which objects it gives).

    A label map gives every object (one its ids do not hold is absent there; an id that is not an object's
    is an error); a binary mask gives one object: the only one, or the one named like the file's stem.
    """
    image = _read_image(path, width, height)
    masks = np.zeros((len(objects), height, width), dtype=bool)
    if is_label_map(image) or (len(objects) > 1 and image.ndim == 2 and not image.any()):
        ids = {o.id for o in objects}
        stray = sorted(set(int(v) for v in np.unique(image)) - ids - {0})
        if stray:
            raise VggtsError(f"mask {path} holds id {stray[0]}, but the objects' ids are {sorted(ids)}")
        for n, obj in enumerate(objects):
            masks[n] = image == obj.id
        return masks, np.ones(len(objects), dtype=bool)
    names = [o.name for o in objects]
    if len(objects) == 1:
        n = 0
    elif Path(path).stem in names:
        n = names.index(Path(path).stem)
    else:
        raise VggtsError(
            f"mask {path} is one object's but its name '{Path(path).stem}' is none of the objects' "
            f"({', '.join(names)}); name the file after its object, or give a label map"
        )
    masks[n] = _marked(image)  # an empty one says the object is not there
    given = np.zeros(len(objects), dtype=bool)
    given[n] = True
    return masks, given


def save_mask_png(path: Path, mask: np.ndarray) -> None:
    """Write an (H, W) bool mask as a single-channel 8-bit PNG: 255 inside, 0 outside."""
    save_label_png(path, mask.astype(np.uint8) * 255)


def save_label_png(path: Path, labels: np.ndarray) -> None:
    """Write an (H, W) uint8 or uint16 single-channel image as a PNG of that depth."""
    # Compression level 1: masks still shrink ~50x and encoding stays cheap on long videos.
    ok, data = cv2.imencode(".png", labels, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise VggtsError(f"could not encode mask PNG {path}")
    Path(path).write_bytes(data.tobytes())
