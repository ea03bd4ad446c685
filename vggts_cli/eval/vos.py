"""Semi-supervised video object segmentation on DAVIS-layout data: J (region) and F (boundary) as the DAVIS
2017 evaluation scores them.

Layout: `DATA/JPEGImages/480p/<seq>/*.jpg` and `DATA/Annotations/480p/<seq>/*.png`, one annotation per frame,
the same file stems. An annotation is a palette PNG whose indices are object ids (0 background, 255 void:
ignored), or — DAVIS 2016 — a grayscale PNG of 0 and 255 only, one object (255 is then the object).

Protocol (davis2017-evaluation, semi-supervised task): every object of the first frame's annotation is
propagated from that mask alone; per object and frame, J = IoU and F = boundary F-measure (boundaries one
pixel wide by the seg2bmap rule, matched within ceil(0.008 · image diagonal) pixels by a disk dilation); the
first and the last frame are not scored. Per object: the mean over its frames, the recall (fraction of frames
> 0.5) and the decay (first quarter's mean minus last quarter's). Then the means over all objects of all
sequences; J&F is the mean of the J and F means. One deliberate difference: the official code zeroes the
void label before it looks for void pixels, so it never ignores them; here void pixels are left out of both
measures, as its metric functions intend. Objects are propagated independently (their masks may overlap).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vggts_cli.engines.base import Engine, Reference, View
from vggts_cli.errors import UsageError
from vggts_cli.eval.metrics import BOUND_TH, boundary_f

VOID = 255
RESOLUTION = "480p"


# -- measures -------------------------------------------------------------------------------------------


def jaccard(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> float:
    """Region similarity J of (H, W) bool masks: |gt ∩ pred| / |gt ∪ pred| over non-void pixels; 1.0 when the
    union is empty. `void`: (H, W) bool, pixels ignored (None: none)."""
    _check(gt, pred, void)
    keep = np.ones(gt.shape, bool) if void is None else ~void.astype(bool)
    gt, pred = gt.astype(bool) & keep, pred.astype(bool) & keep
    union = np.count_nonzero(gt | pred)
    return 1.0 if union == 0 else np.count_nonzero(gt & pred) / union


def boundary_measure(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = BOUND_TH
) -> float:
    """Boundary F-measure F of (H, W) bool masks, void pixels (H, W) bool removed from both masks first.

    Boundaries by seg2bmap (a pixel differing from its right, lower or lower-right neighbour); a boundary
    pixel matches when the other mask's boundary lies within ceil(bound_th · diagonal) pixels (bound_th ≥ 1:
    that many pixels); F = 2PR / (P + R). Empty boundaries: both empty 1.0, one empty 0.0.
    """
    _check(gt, pred, void)
    if void is not None:
        keep = ~void.astype(bool)
        gt, pred = gt.astype(bool) & keep, pred.astype(bool) & keep
    return boundary_f(gt, pred, bound_th)


def statistics(values: Sequence[float]) -> tuple[float, float, float]:
    """Per-frame values of one object (n,) -> (mean, recall = fraction > 0.5, decay), as DAVIS computes them:
    the decay is the mean of the first of four equal bins of frames minus the mean of the last."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return math.nan, math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, recall = float(np.nanmean(v)), float(np.nanmean(v > 0.5))
        ids = (np.round(np.linspace(1, v.size, 5) + 1e-10) - 1).astype(int)
        bins = [v[ids[i] : ids[i + 1] + 1] for i in range(4)]
        decay = float(np.nanmean(bins[0]) - np.nanmean(bins[3]))
    return mean, recall, decay


def _check(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None) -> None:
    if gt.shape != pred.shape or (void is not None and void.shape != gt.shape):
        shapes = f"ground truth {gt.shape}, prediction {pred.shape}"
        raise ValueError(f"masks differ in size: {shapes}" + ("" if void is None else f", void {void.shape}"))


# -- data -----------------------------------------------------------------------------------------------


def read_annotation(path: Path) -> np.ndarray:
    """An annotation PNG -> (H, W) uint8 label map: object ids 1..254, 0 background, 255 void.

    Palette PNGs give their indices. A grayscale PNG holding only 0 and 255 is a DAVIS 2016 binary mask:
    255 becomes object 1. Any other grayscale PNG is read as a label map as it is.
    """
    from PIL import Image

    with Image.open(path) as image:
        if image.mode == "P":
            return np.array(image, dtype=np.uint8)
        if image.mode in ("1", "L", "LA", "I;16", "I"):  # LA: the grey channel (the alpha is ignored)
            labels = np.array(image.convert("L"), dtype=np.uint8)
            if set(np.unique(labels).tolist()) <= {0, 255}:
                return (labels == 255).astype(np.uint8)
            return labels
    raise UsageError(f"{path}: an annotation must be a palette or grayscale PNG, got mode {image.mode}")


def read_image(path: Path) -> np.ndarray:
    """A frame -> (H, W, 3) uint8 RGB."""
    from PIL import Image

    with Image.open(path) as image:
        return np.array(image.convert("RGB"))


@dataclass(frozen=True)
class VosSequence:
    """One sequence: its frames and their annotations, in frame order (paired by file stem)."""

    name: str
    images: tuple[Path, ...]
    annotations: tuple[Path, ...]


def sequence_names(data: Path, sequences_file: Path | None = None) -> list[str]:
    """The sequences to score: those `sequences_file` names, else every folder of `JPEGImages/480p`.

    The file may hold one sequence name a line (DAVIS 2017 ImageSets) or lines of frame paths such as
    `/JPEGImages/480p/bear/00000.jpg /Annotations/480p/bear/00000.png` (DAVIS 2016); order is kept, repeats
    dropped, blank lines and `#` comments skipped.
    """
    if sequences_file is None:
        root = data / "JPEGImages" / RESOLUTION
        if not root.is_dir():
            raise UsageError(f"{data} has no JPEGImages/{RESOLUTION}/ folder (the DAVIS layout)")
        return sorted(p.name for p in root.iterdir() if p.is_dir())
    names: list[str] = []
    for line in sequences_file.read_text(encoding="utf-8").splitlines():
        token = line.split("#", 1)[0].strip().split()
        if not token:
            continue
        name = Path(token[0]).parent.name if "/" in token[0] else token[0]
        if name not in names:
            names.append(name)
    if not names:
        raise UsageError(f"{sequences_file} names no sequence")
    return names


def load_sequence(data: Path, name: str) -> VosSequence:
    """A sequence's frames and annotations; every frame must have its annotation."""
    image_dir = data / "JPEGImages" / RESOLUTION / name
    mask_dir = data / "Annotations" / RESOLUTION / name
    images = sorted(p for p in image_dir.glob("*.jpg")) if image_dir.is_dir() else []
    if not images:
        raise UsageError(f"sequence {name}: no frames in {image_dir}")
    annotations = [mask_dir / f"{p.stem}.png" for p in images]
    missing = [p for p in annotations if not p.is_file()]
    if missing:
        raise UsageError(f"sequence {name}: {len(missing)} frames have no annotation, e.g. {missing[0]}")
    return VosSequence(name, tuple(images), tuple(annotations))


# -- propagation and scoring ----------------------------------------------------------------------------


def propagate_object(
    engine: Engine,
    frames: Sequence[np.ndarray],
    seed_mask: np.ndarray,
    camera: str = "vos",
    on_frame: Callable[[np.ndarray, int], None] = lambda mask, i: None,
) -> None:
    """Propagate `seed_mask` ((H, W) bool on frames[0]) through frames[1:] ((H, W, 3) uint8 each) as
    `vggts propagate` walks one camera: each frame from the seed reference and the previous frame's
    prediction (the seed itself for frame 1), announced `engine.window` frames ahead. `on_frame(mask, i)`
    gets each predicted (H, W) bool mask with its index in `frames`."""
    seed_view = View(camera, 0, frames[0])
    seed = Reference(seed_view, seed_mask, "seed")
    previous = Reference(seed_view, seed_mask, "temporal")
    engine.start([seed])
    window = max(1, engine.window)
    for start in range(1, len(frames), window):
        views = [View(camera, i, frames[i]) for i in range(start, min(len(frames), start + window))]
        engine.prepare(seed_view, views)
        for view in views:
            prediction = engine.segment(view, [seed, previous])
            previous = Reference(view, prediction.mask, "temporal")
            on_frame(prediction.mask, view.index)


def score_sequence(
    engine: Engine,
    sequence: VosSequence,
    max_frames: int | None = None,
    on_frame: Callable[[int], None] = lambda n: None,
) -> dict:
    """Propagate every object of the first annotation through the sequence (its first `max_frames` frames,
    taken as the whole sequence) and score frames 1..n-2.

    Returns `{"sequence", "frames", "scored_frames", "seconds", "objects": {id: {"J": [...], "F": [...],
    "J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay"}}}`; `on_frame(1)` after each engine
    call.
    """
    n = len(sequence.images) if max_frames is None else min(max_frames, len(sequence.images))
    if n < 3:
        raise UsageError(f"sequence {sequence.name}: {n} frames; scoring leaves out the first and last")
    frames = [read_image(p) for p in sequence.images[: n - 1]]  # the last frame is never scored
    labels = [read_annotation(p) for p in sequence.annotations[: n - 1]]
    for i, (frame, label) in enumerate(zip(frames, labels, strict=True)):
        if label.shape != frame.shape[:2]:
            raise UsageError(
                f"sequence {sequence.name}: annotation {sequence.annotations[i].name} is "
                f"{label.shape[1]}×{label.shape[0]}, its frame {frame.shape[1]}×{frame.shape[0]}"
            )
    ids = [int(k) for k in np.unique(labels[0]) if k not in (0, VOID)]
    if not ids:
        raise UsageError(f"sequence {sequence.name}: the first annotation holds no object")
    objects: dict[str, dict] = {}
    start = time.perf_counter()
    for obj in ids:
        j_values: list[float] = []
        f_values: list[float] = []

        def score(mask: np.ndarray, i: int, obj: int = obj, j=j_values, f=f_values) -> None:
            gt, void = labels[i] == obj, labels[i] == VOID
            j.append(jaccard(gt, mask, void))
            f.append(boundary_measure(gt, mask, void))
            on_frame(1)

        propagate_object(engine, frames, labels[0] == obj, f"{sequence.name}#{obj}", score)
        cell: dict = {"J": j_values, "F": f_values}
        for key, values in (("J", j_values), ("F", f_values)):
            cell[f"{key}_mean"], cell[f"{key}_recall"], cell[f"{key}_decay"] = statistics(values)
        objects[str(obj)] = cell
    return {
        "sequence": sequence.name,
        "frames": n,
        "scored_frames": n - 2,
        "seconds": time.perf_counter() - start,
        "objects": objects,
    }


def summarize(sequences: Sequence[dict]) -> dict:
    """`score_sequence` results of one engine -> the DAVIS global figures (means over all objects):
    `{"J&F", "J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay", "objects", "frames",
    "seconds_per_frame", "score"}`; `score` = J&F, what the default-engine ranking reads."""
    cells = [cell for seq in sequences for cell in seq["objects"].values()]
    out: dict = {}
    for key in ("J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay"):
        out[key] = float(np.mean([c[key] for c in cells])) if cells else math.nan
    out["J&F"] = (out["J_mean"] + out["F_mean"]) / 2
    out["objects"] = len(cells)
    out["frames"] = sum(len(c["J"]) for c in cells)
    seconds = sum(seq["seconds"] for seq in sequences)
    calls = sum(seq["frames"] - 2 for seq in sequences for _ in seq["objects"])
    out["seconds_per_frame"] = seconds / calls if calls else None
    out["score"] = out["J&F"]
    return out


def engine_calls(data: Path, names: Sequence[str], max_frames: int | None = None) -> int:
    """How many engine calls `evaluate_vos` makes per engine (one per scored frame and object)."""
    total = 0
    for name in names:
        seq = load_sequence(data, name)
        n = len(seq.images) if max_frames is None else min(max_frames, len(seq.images))
        labels = read_annotation(seq.annotations[0])
        total += max(0, n - 2) * len([k for k in np.unique(labels) if k not in (0, VOID)])
    return total


def evaluate_vos(
    engines: dict[str, Engine],
    data: Path,
    names: Sequence[str],
    max_frames: int | None = None,
    on_frame: Callable[[int], None] = lambda n: None,
) -> dict:
    """Score every engine on the sequences `names` of `data`.

    Returns `{"data", "sequences", "max_frames", "engines", "results": {engine: summary},
    "per_sequence": {engine: {seq: {object: {"J_mean", "F_mean", ...}}}}}`; `on_frame(1)` per engine call.
    """
    sequences = [load_sequence(data, name) for name in names]
    results: dict[str, dict] = {}
    per_sequence: dict[str, dict] = {}
    for engine_name, engine in engines.items():
        scored = [score_sequence(engine, seq, max_frames, on_frame) for seq in sequences]
        results[engine_name] = summarize(scored)
        per_sequence[engine_name] = {
            s["sequence"]: {
                obj: {k: v for k, v in cell.items() if k not in ("J", "F")}
                for obj, cell in s["objects"].items()
            }
            for s in scored
        }
    return {
        "data": str(data),
        "sequences": list(names),
        "max_frames": max_frames,
        "engines": list(engines),
        "results": results,
        "per_sequence": per_sequence,
    }
