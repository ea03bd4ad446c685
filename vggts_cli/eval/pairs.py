"""Real two-view pairs: a mask in view A, the object (or its absence) in view B.

A pair set is a folder with `pairs.json`:

    {"source": "...what it was made from...",
     "pairs": [{"id": "moto-03-lr", "group": "stereo", "reference": "cross", "source": "images/a.png",
                "source_mask": "masks/a.png", "target": "images/b.png", "target_mask": "masks/b.png"}, ...]}

Paths are relative to the folder. Masks are annotation PNGs as `vggts eval vos` reads them
(`vos.read_annotation`: object 1, 0 background, 255 void = not scored); `"target_mask": null` says the object
is absent from the target. `"reference"` says how the two views relate, as a job would see them: "cross"
(default) — another camera at the same instant (a stereo pair); "seed" — the same camera at another time
(frames of one clip far apart, or another clip), the source being the user's mask of the job, whose
surroundings need not have stayed put around the object. Scoring (`evaluate_pairs`): the engine gets the
target and the source as that reference; a pair whose target shows the object gives IoU and boundary F
(void ignored) and counts as "present" for the visibility balanced accuracy (presence score > 0.5 says
present); an absent target only counts for the balanced accuracy. `iou_presence` is the IoU of what a user
keeps when trusting the presence score: a prediction scored ≤ 0.5 counts as an empty mask.

`stereo_pairs` and `davis_pairs` make such pairs from real data (scikit-image's Middlebury stereo pair with
ground-truth disparity; DAVIS sequences' frames far apart in time), `write_pair_set` writes them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vggts_cli.engines.base import Engine, Reference, ReferenceKind, View
from vggts_cli.errors import UsageError
from vggts_cli.eval.metrics import CONF_THRESH, balanced_accuracy, presence_recalls
from vggts_cli.eval.vos import VOID, boundary_measure, jaccard, read_annotation, read_image

PAIRS_FILE = "pairs.json"
RELATIONS: tuple[ReferenceKind, ...] = ("cross", "seed")  # how a pair's source can relate to its target


@dataclass(frozen=True)
class Pair:
    """Images (H, W, 3) uint8; masks (H, W) uint8 labels (1 object, 0 background, 255 void) at their
    image's size; `target_mask` None when the object is absent from the target; `reference` the kind of
    reference the source is to the target (`RELATIONS`)."""

    id: str
    group: str
    source: np.ndarray
    source_mask: np.ndarray
    target: np.ndarray
    target_mask: np.ndarray | None
    reference: ReferenceKind = "cross"


# -- reading and writing --------------------------------------------------------------------------------


def load_pairs(folder: Path) -> list[Pair]:
    """The pairs of a pair-set folder (see the module docstring), checked."""
    index = folder / PAIRS_FILE
    try:
        records = json.loads(index.read_text(encoding="utf-8"))["pairs"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{index}: not a pair set ({e})") from None
    pairs = []
    for rec in records:
        try:
            source, target = read_image(folder / rec["source"]), read_image(folder / rec["target"])
            source_mask = read_annotation(folder / rec["source_mask"])
            target_mask = (
                None if rec.get("target_mask") is None else read_annotation(folder / rec["target_mask"])
            )
        except (OSError, KeyError) as e:
            raise UsageError(f"{index}: pair {rec.get('id', '?')}: {e}") from None
        for image, mask in ((source, source_mask), (target, target_mask)):
            if mask is not None and mask.shape != image.shape[:2]:
                raise UsageError(f"{index}: pair {rec['id']}: a mask is not its image's size")
        if not (source_mask == 1).any():
            raise UsageError(f"{index}: pair {rec['id']}: the source mask is empty")
        reference = rec.get("reference", "cross")
        if reference not in RELATIONS:
            raise UsageError(
                f"{index}: pair {rec['id']}: reference {reference!r} is not one of {', '.join(RELATIONS)}"
            )
        group = rec.get("group", "all")
        pairs.append(Pair(rec["id"], group, source, source_mask, target, target_mask, reference))
    if not pairs:
        raise UsageError(f"{index} holds no pair")
    return pairs


def write_pair_set(folder: Path, pairs: Sequence[Pair], source: str) -> Path:
    """Write `pairs` as a pair-set folder (PNG images, palette PNG masks, `pairs.json`); returns the index."""
    from PIL import Image

    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    palette = [0, 0, 0, 255, 255, 255] + [0, 0, 0] * 253 + [224, 224, 192]

    def save_mask(mask: np.ndarray, path: Path) -> None:
        image = Image.fromarray(mask.astype(np.uint8), mode="P")
        image.putpalette(palette)
        image.save(path)

    records = []
    for pair in pairs:
        rec = {"id": pair.id, "group": pair.group, "reference": pair.reference}
        for key, image in (("source", pair.source), ("target", pair.target)):
            rec[key] = f"images/{pair.id}-{key}.png"
            Image.fromarray(image).save(folder / rec[key])
        rec["source_mask"] = f"masks/{pair.id}-source.png"
        save_mask(pair.source_mask, folder / rec["source_mask"])
        rec["target_mask"] = None
        if pair.target_mask is not None:
            rec["target_mask"] = f"masks/{pair.id}-target.png"
            save_mask(pair.target_mask, folder / rec["target_mask"])
        records.append(rec)
    index = folder / PAIRS_FILE
    write_atomic(index, json.dumps({"source": source, "pairs": records}, indent=1) + "\n")
    return index


def write_atomic(final: Path, text: str) -> None:
    """Write `final` under its partial name and rename it when complete."""
    from vggts_cli.fsutil import commit, discard, partial_path

    partial = partial_path(final)
    try:
        partial.write_text(text, encoding="utf-8")
        commit(partial, final)
    except BaseException:
        discard(partial)
        raise


# -- making pairs from real data ------------------------------------------------------------------------


def disparity_regions(
    disparity: np.ndarray, step: float = 1.0, min_area: float = 0.005, max_area: float = 0.3, count: int = 8
) -> list[np.ndarray]:
    """Objects of a view from its disparity (H, W) float (inf/nan = unknown): connected regions over which
    disparity varies smoothly (every 4-neighbour within `step` pixels), closed and hole-filled, whose area is
    `min_area`..`max_area` of the frame; the `count` largest, as (H, W) bool masks. Depth edges separate them,
    so a region is one surface: a wheel, a bench, a lamp, a wall."""
    from scipy import ndimage

    known = np.isfinite(disparity)
    d = np.where(known, disparity, -1e6)
    jump = np.zeros(d.shape, bool)
    dx, dy = np.abs(np.diff(d, axis=1)) > step, np.abs(np.diff(d, axis=0)) > step
    jump[:, 1:] |= dx
    jump[:, :-1] |= dx
    jump[1:, :] |= dy
    jump[:-1, :] |= dy
    labels, n = ndimage.label(known & ~jump)
    areas = ndimage.sum(np.ones(d.shape), labels, range(1, n + 1)) / d.size
    regions = []
    for k in np.argsort(-areas):
        if len(regions) == count:
            break
        if min_area <= areas[k] <= max_area:
            region = ndimage.binary_closing(labels == k + 1, iterations=2)
            regions.append(ndimage.binary_fill_holes(region))
    return regions


def warp_left_to_right(mask: np.ndarray, disparity: np.ndarray) -> np.ndarray:
    """A left-view object (H, W) bool -> the right view's labels (H, W) uint8: 1 object, 0 background, 255
    void. A left pixel (x, y) of known disparity d lands on (round(x - d), y); where several land on one
    right pixel the nearest (largest d) is the visible one, so occlusion is exact; right pixels no left pixel
    lands on (seen by the right camera only, or unknown disparity) are void, but for rounding gaps of at most
    two pixels between pixels of one label in a row, which take that label."""
    h, w = disparity.shape
    ys, xs = np.nonzero(np.isfinite(disparity))
    d = disparity[ys, xs]
    xr = np.round(xs - d).astype(int)
    inside = (xr >= 0) & (xr < w)
    ys, xs, xr, d = ys[inside], xs[inside], xr[inside], d[inside]
    order = np.argsort(d)  # ascending: the nearest pixel is written last and wins
    ys, xs, xr = ys[order], xs[order], xr[order]
    labels = np.full((h, w), VOID, np.uint8)
    labels[ys, xr] = mask[ys, xs].astype(np.uint8)
    # Rounding leaves one- or two-pixel gaps where the disparity stretches a surface: a void pixel between
    # object pixels within 2 pixels left and right of it takes their label (known pixels never change).
    for value in (1, 0):
        row = labels == value
        left = np.zeros_like(row)
        right = np.zeros_like(row)
        for k in (1, 2):
            left[:, k:] |= row[:, :-k]
            right[:, :-k] |= row[:, k:]
        labels[(labels == VOID) & left & right] = value
    return labels


def absent_crop(image: np.ndarray, labels: np.ndarray, min_fraction: float = 0.35) -> np.ndarray | None:
    """The largest full-height or full-width strip of `image` (H, W, 3) that holds no pixel of the object
    (labels == 1) nor any void pixel within 8 pixels of it — a target view without the object — or None when
    no strip is `min_fraction` of the frame's width or height."""
    from scipy import ndimage

    near = ndimage.binary_dilation(labels == 1, iterations=8)
    ys, xs = np.nonzero(near)
    h, w = labels.shape
    if len(xs) == 0:
        return image
    strips = [
        (xs.min() / w, image[:, : xs.min()]),
        ((w - 1 - xs.max()) / w, image[:, xs.max() + 1 :]),
        (ys.min() / h, image[: ys.min()]),
        ((h - 1 - ys.max()) / h, image[ys.max() + 1 :]),
    ]
    fraction, crop = max(strips, key=lambda s: s[0])
    return np.ascontiguousarray(crop) if fraction >= min_fraction else None


def stereo_pairs(
    left: np.ndarray, right: np.ndarray, disparity: np.ndarray, name: str = "stereo"
) -> list[Pair]:
    """Pairs from one rectified stereo pair (images (H, W, 3) uint8, left-view disparity (H, W)): per
    `disparity_regions` object, left→right and right→left, and a negative (left → a right-view strip without
    the object, `absent_crop`) where one exists."""
    pairs = []
    for k, region in enumerate(disparity_regions(disparity)):
        in_left = region.astype(np.uint8)
        in_right = warp_left_to_right(region, disparity)
        pid = f"{name}-{k:02d}"
        pairs.append(Pair(f"{pid}-lr", "stereo", left, in_left, right, in_right))
        if (in_right == 1).sum() >= 0.5 * region.sum():
            pairs.append(Pair(f"{pid}-rl", "stereo", right, (in_right == 1).astype(np.uint8), left, in_left))
        crop = absent_crop(right, in_right)
        if crop is not None:
            pairs.append(Pair(f"{pid}-absent", "stereo", left, in_left, crop, None))
    return pairs


def davis_pairs(data: Path, names: Sequence[str], min_gap: int = 40) -> list[Pair]:
    """Pairs from DAVIS-layout sequences: each sequence's first frame and mask → its last frame (when at least
    `min_gap` frames later; group "davis-gap"), and → the middle frame of the sequence `len(names) // 2`
    places further in `names` (another scene: object absent; group "davis-absent"). One object per
    sequence: the first annotation's lowest id. The source is a seed reference: one camera, another time."""
    from vggts_cli.eval.vos import load_sequence

    sequences = [load_sequence(data, name) for name in names]
    pairs = []
    for i, seq in enumerate(sequences):
        first = read_annotation(seq.annotations[0])
        ids = [int(k) for k in np.unique(first) if k not in (0, VOID)]
        if not ids:
            continue
        obj = ids[0]
        source, source_mask = read_image(seq.images[0]), _object(first, obj)
        last = len(seq.images) - 1
        if last >= min_gap:
            truth = _object(read_annotation(seq.annotations[last]), obj)
            target_mask = truth if (truth == 1).any() else None
            pairs.append(
                Pair(
                    f"{seq.name}-0-{last}",
                    "davis-gap",
                    source,
                    source_mask,
                    read_image(seq.images[last]),
                    target_mask,
                    "seed",
                )
            )
        other = sequences[(i + len(sequences) // 2) % len(sequences)]
        if other is not seq:
            middle = other.images[len(other.images) // 2]
            pairs.append(
                Pair(
                    f"{seq.name}-in-{other.name}",
                    "davis-absent",
                    source,
                    source_mask,
                    read_image(middle),
                    None,
                    "seed",
                )
            )
    return pairs


def _object(labels: np.ndarray, obj: int) -> np.ndarray:
    """Labels -> the labels of one object: 1 on it, 255 where void, 0 elsewhere."""
    out = (labels == obj).astype(np.uint8)
    out[labels == VOID] = VOID
    return out


# -- scoring --------------------------------------------------------------------------------------------


def score_pair(engine: Engine, pair: Pair) -> dict:
    """One pair through `engine` -> `{"id", "group", "present", "score", "seconds"}` plus, when the object is
    present in the target, `"iou"`, `"iou_presence"`, `"boundary_f"`."""
    source = View("source", 0, pair.source)
    target = View("target", 0, pair.target)
    start = time.perf_counter()
    # The source is the job's seed (what an engine may tune to), seen from the target as the pair says.
    engine.start([Reference(source, pair.source_mask == 1, "seed")])
    prediction = engine.segment(target, [Reference(source, pair.source_mask == 1, pair.reference)])
    row = {
        "id": pair.id,
        "group": pair.group,
        "present": pair.target_mask is not None,
        "score": float(prediction.score),
        "seconds": time.perf_counter() - start,
    }
    if pair.target_mask is not None:
        truth, void = pair.target_mask == 1, pair.target_mask == VOID
        said_present = prediction.score > CONF_THRESH
        row["iou"] = jaccard(truth, prediction.mask, void)
        row["iou_presence"] = row["iou"] if said_present else jaccard(truth, np.zeros_like(truth), void)
        row["boundary_f"] = boundary_measure(truth, prediction.mask, void)
    return row


def summarize_pairs(rows: Sequence[dict]) -> dict:
    """Per-pair rows -> `{"pairs", "present", "absent", "iou", "iou_presence", "boundary_f",
    "balanced_accuracy", "recall_there", "recall_absent", "seconds_per_pair", "score"}` (means and the
    visibility call's recalls, `presence_recalls`; None where nothing to average);
    `score` = iou. With one class only (every target absent) the balanced accuracy is that class's recall."""
    present = [r for r in rows if r["present"]]

    def mean(key: str) -> float | None:
        return float(np.mean([r[key] for r in present])) if present else None

    labels = [int(r["present"]) for r in rows]
    said = [int(r["score"] > CONF_THRESH) for r in rows]
    seconds = [r["seconds"] for r in rows]
    there, absent = presence_recalls(labels, said)
    out = {
        "pairs": len(rows),
        "present": len(present),
        "absent": len(rows) - len(present),
        "iou": mean("iou"),
        "iou_presence": mean("iou_presence"),
        "boundary_f": mean("boundary_f"),
        "balanced_accuracy": balanced_accuracy(labels, said) if rows else None,
        "recall_there": there,
        "recall_absent": absent,
        "seconds_per_pair": float(np.mean(seconds)) if seconds else None,
    }
    out["score"] = out["iou"]
    return out


def evaluate_pairs(
    engines: dict[str, Engine], pairs: Sequence[Pair], on_pair: Callable[[int], None] = lambda n: None
) -> dict:
    """Score every engine on `pairs`: `{"engines", "groups", "results": {engine: {"all": summary, <group>:
    summary}}, "per_pair": {engine: [row, ...]}}`; `on_pair(1)` after each engine call."""
    groups = list(dict.fromkeys(p.group for p in pairs))
    results: dict[str, dict] = {}
    per_pair: dict[str, list] = {}
    for name, engine in engines.items():
        rows = []
        for pair in pairs:
            rows.append(score_pair(engine, pair))
            on_pair(1)
        per_pair[name] = rows
        results[name] = {"all": summarize_pairs(rows)}
        for group in groups:
            results[name][group] = summarize_pairs([r for r in rows if r["group"] == group])
    return {"engines": list(engines), "groups": groups, "results": results, "per_pair": per_pair}


def main(argv: Sequence[str] | None = None) -> None:
    """Make the real pair set: `python -m vggts_cli.eval.pairs --out DIR [--davis DAVIS --sequences FILE]`.

    Always the Middlebury motorcycle stereo pair bundled with scikit-image; with `--davis`, also the
    far-apart and absent pairs of the DAVIS sequences `--sequences` names (e.g. ImageSets/480p/train.txt).
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m vggts_cli.eval.pairs", description=main.__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--davis", type=Path)
    parser.add_argument("--sequences", type=Path)
    parser.add_argument("--min-gap", type=int, default=40)
    args = parser.parse_args(argv)
    import skimage.data

    from vggts_cli.eval.vos import sequence_names

    left, right, disparity = skimage.data.stereo_motorcycle()
    pairs = stereo_pairs(left, right, disparity, "motorcycle")
    source = ["scikit-image data.stereo_motorcycle (Middlebury 2014 Motorcycle, ground-truth disparity)"]
    if args.davis is not None:
        names = sequence_names(args.davis, args.sequences)
        pairs += davis_pairs(args.davis, names, args.min_gap)
        source.append(f"DAVIS-layout {args.davis}: {len(names)} sequences")
    index = write_pair_set(args.out, pairs, "; ".join(source))
    groups = {g: sum(p.group == g for p in pairs) for g in dict.fromkeys(p.group for p in pairs)}
    print(f"{len(pairs)} pairs {groups} -> {index}")


if __name__ == "__main__":
    main()
