"""Real-footage evaluation: DAVIS J/F on hand-computable masks, a DAVIS-layout folder (real JPEGs,
palette PNGs) through `vggts eval vos`, a real-pair folder through `vggts eval pairs`, the stereo warp, and
the seed frame of a real photograph given as its own target."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_app
from PIL import Image

from vggts_cli.cli.app import app
from vggts_cli.engines.base import Reference, View
from vggts_cli.engines.registry import make_engine
from vggts_cli.eval import pairs as pairs_mod
from vggts_cli.eval import vos

PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0, 0, 0] * 252 + [224, 224, 192]


def vggts(*args: object, code: int = 0):
    result = run_app(app, *args)
    assert result.exit_code == code, f"vggts {' '.join(map(str, args))}: {result.stdout}{result.stderr}"
    return result


def square(size: int, x0: int, y0: int, side: int, shape: tuple[int, int] = (100, 100)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[y0 : y0 + side, x0 : x0 + side] = True
    return mask


# ---------------------------------------------------------------------------------------------- measures


def brute_force_f(gt: np.ndarray, pred: np.ndarray, tolerance: float) -> float:
    """Boundary F by explicit distances: a boundary pixel matches when one of the other mask's boundary
    pixels lies within `tolerance` (Euclidean) — what the disk dilation computes."""
    from vggts_cli.eval.metrics import boundary_map

    g, p = np.argwhere(boundary_map(gt)), np.argwhere(boundary_map(pred))
    dist = np.sqrt(((g[:, None, :] - p[None, :, :]) ** 2).sum(-1))
    precision, recall = (dist.min(0) <= tolerance).mean(), (dist.min(1) <= tolerance).mean()
    return 2 * precision * recall / (precision + recall)


def test_j_and_f_on_hand_computable_masks():
    a = square(100, 20, 30, 10)
    assert vos.jaccard(a, a) == 1.0 and vos.boundary_measure(a, a) == 1.0
    far = square(100, 70, 70, 10)
    assert vos.jaccard(a, far) == 0.0 and vos.boundary_measure(a, far) == 0.0
    # Shifted 3 px right: the overlap is 7 × 10 = 70 pixels, the union 100 + 100 - 70 = 130.
    shifted = square(100, 23, 30, 10)
    assert vos.jaccard(a, shifted) == pytest.approx(70 / 130)
    # 100×100: the boundary tolerance is ceil(0.008 · √2 · 100) = 2 px, so a 2 px shift matches every
    # boundary pixel; a 3 px shift does not, and F agrees with matching by explicit distances.
    assert vos.boundary_measure(a, square(100, 22, 30, 10)) == 1.0
    assert vos.boundary_measure(a, shifted) == pytest.approx(brute_force_f(a, shifted, 2.0))
    assert vos.boundary_measure(a, shifted) < 1.0
    # Both empty: perfect; one empty: nothing matches.
    empty = np.zeros_like(a)
    assert (vos.jaccard(empty, empty), vos.boundary_measure(empty, empty)) == (1.0, 1.0)
    assert (vos.jaccard(a, empty), vos.boundary_measure(a, empty)) == (0.0, 0.0)


def test_void_pixels_are_ignored():
    gt = square(100, 20, 30, 10)
    pred = gt | square(100, 60, 60, 20)  # a spurious blob...
    void = square(100, 55, 55, 30)  # ...entirely inside a void region
    assert vos.jaccard(gt, pred) == pytest.approx(100 / 500)
    assert vos.jaccard(gt, pred, void) == 1.0
    assert vos.boundary_measure(gt, pred, void) == 1.0
    # Void over half the object: only the other half counts (50 of 50 kept pixels predicted, of 100).
    half_void = square(100, 20, 30, 10) & (np.arange(100)[None, :] < 25)
    assert vos.jaccard(gt, gt & ~half_void, half_void) == 1.0
    with pytest.raises(ValueError, match="differ in size"):
        vos.jaccard(gt, pred, np.zeros((5, 5), bool))


def test_statistics_mean_recall_decay():
    mean, recall, decay = vos.statistics([1.0, 1.0, 0.0, 0.0])
    # Bins of 4 frames as DAVIS cuts them: [0:2], [1:3], [2:3], [2:4] -> decay 1 - 0.
    assert (mean, recall, decay) == (0.5, 0.5, 1.0)
    assert vos.statistics([0.6, 0.4, 0.9])[1] == pytest.approx(2 / 3)


def test_annotations_palette_and_davis2016_binary(tmp_path):
    labels = np.zeros((8, 10), np.uint8)
    labels[1:3, 1:4], labels[5:7, 5:9], labels[0, :] = 1, 2, 255
    image = Image.fromarray(labels, mode="P")
    image.putpalette(PALETTE)
    image.save(tmp_path / "p.png")
    assert np.array_equal(vos.read_annotation(tmp_path / "p.png"), labels)
    Image.fromarray(np.where(labels == 1, 255, 0).astype(np.uint8), mode="L").save(tmp_path / "l.png")
    assert np.array_equal(vos.read_annotation(tmp_path / "l.png"), (labels == 1).astype(np.uint8))


def test_sequence_names_read_both_imagesets_formats(tmp_path):
    (tmp_path / "a.txt").write_text("bear\n\n# comment\nboat\nbear\n")
    assert vos.sequence_names(tmp_path, tmp_path / "a.txt") == ["bear", "boat"]
    (tmp_path / "b.txt").write_text(
        "/JPEGImages/480p/bear/00000.jpg /Annotations/480p/bear/00000.png\n"
        "/JPEGImages/480p/bear/00001.jpg /Annotations/480p/bear/00001.png\n"
        "/JPEGImages/480p/surf/00000.jpg /Annotations/480p/surf/00000.png\n"
    )
    assert vos.sequence_names(tmp_path, tmp_path / "b.txt") == ["bear", "surf"]


# ------------------------------------------------------------------------------- DAVIS layout, end to end


def textured(height: int, width: int, seed: int) -> np.ndarray:
    """A photo-like (height, width, 3) uint8 texture: smoothed noise at several scales."""
    import cv2

    rng = np.random.default_rng(seed)
    out = np.zeros((height, width, 3), np.float32)
    for scale in (4, 16, 48):
        noise = rng.random((height // scale + 2, width // scale + 2, 3)).astype(np.float32)
        out += cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    out -= out.min()
    return (255 * out / out.max()).astype(np.uint8)


def write_davis(root: Path, name: str = "toy", frames: int = 6) -> list[np.ndarray]:
    """A DAVIS-layout sequence: a textured background and two textured squares moving 3 px a frame, a void
    band along the top; real JPEG frames and palette PNG annotations. Returns the label maps."""
    h, w = 120, 160
    background, obj1, obj2 = textured(h, w, 0), textured(30, 30, 1), textured(24, 24, 2)
    (root / "JPEGImages/480p" / name).mkdir(parents=True)
    (root / "Annotations/480p" / name).mkdir(parents=True)
    all_labels = []
    for i in range(frames):
        image, labels = background.copy(), np.zeros((h, w), np.uint8)
        x1, x2 = 20 + 3 * i, 110 - 3 * i
        image[40:70, x1 : x1 + 30], labels[40:70, x1 : x1 + 30] = obj1, 1
        image[80:104, x2 : x2 + 24], labels[80:104, x2 : x2 + 24] = obj2, 2
        labels[:4, :] = 255
        Image.fromarray(image).save(root / f"JPEGImages/480p/{name}/{i:05d}.jpg", quality=95)
        png = Image.fromarray(labels, mode="P")
        png.putpalette(PALETTE)
        png.save(root / f"Annotations/480p/{name}/{i:05d}.png")
        all_labels.append(labels)
    return all_labels


def test_eval_vos_end_to_end_with_the_classic_engine(tmp_path):
    write_davis(tmp_path / "davis")
    (tmp_path / "seqs.txt").write_text("toy\n")
    out = tmp_path / "vos.json"
    result = vggts(
        "eval", "vos", "--data", tmp_path / "davis", "--sequences", tmp_path / "seqs.txt",
        "--engine", "classic", "--json", out,
    )  # fmt: skip
    assert "VOS: 1 sequences" in result.stdout  # the table; the figures are checked in the JSON
    report = json.loads(out.read_text())
    assert report["sequences"] == ["toy"] and not list(tmp_path.glob("*.part.*"))
    summary = report["results"]["classic"]
    # Two objects, 6 frames: frames 1..4 scored (the first and the last are not).
    assert summary["objects"] == 2 and summary["frames"] == 2 * 4
    assert summary["J_mean"] > 0.7 and summary["F_mean"] > 0.7
    assert summary["J&F"] == pytest.approx((summary["J_mean"] + summary["F_mean"]) / 2)
    assert summary["score"] == summary["J&F"]
    assert set(report["per_sequence"]["classic"]["toy"]) == {"1", "2"}


def test_eval_vos_rejects_a_folder_without_the_layout(tmp_path):
    result = vggts("eval", "vos", "--data", tmp_path, "--engine", "classic", code=2)
    assert "JPEGImages/480p" in result.stderr


# --------------------------------------------------------------------------------------------- pairs


def test_stereo_warp_moves_by_the_disparity_and_keeps_the_nearest():
    disparity = np.full((6, 12), 2.0, np.float32)
    disparity[:, 6:8] = 4.0  # a nearer surface at x 6..7
    obj = np.zeros((6, 12), bool)
    obj[2:4, 3:5] = True  # a far object at x 3..4
    labels = pairs_mod.warp_left_to_right(obj, disparity)
    # x -> x - d: the object's x 3 lands on 1; its x 4 lands on 2 together with the nearer x 6, which hides
    # it there; x 7 -> 3 hides the background's x 5.
    assert labels[2, :4].tolist() == [0, 1, 0, 0] and (labels[0, :4] == 0).all()
    # Nothing lands on 4..5 (a gap of two between background pixels: filled) nor on 10..11 (seen by the
    # right camera only: void).
    assert (labels[:, 4:6] == 0).all() and (labels[:, 10:] == vos.VOID).all()


def test_eval_pairs_end_to_end(tmp_path):
    labels = write_davis(tmp_path / "davis", frames=6)
    frames = [vos.read_image(p) for p in sorted((tmp_path / "davis/JPEGImages/480p/toy").glob("*.jpg"))]
    pairs = [
        pairs_mod.Pair("p", "toy", frames[0], (labels[0] == 1).astype(np.uint8), frames[5], None),
        pairs_mod.Pair("q", "toy", frames[0], (labels[0] == 1).astype(np.uint8), frames[3], labels[3]),
    ]
    pairs_mod.write_pair_set(tmp_path / "set", pairs, "test")
    out = tmp_path / "pairs.json"
    vggts("eval", "pairs", "--data", tmp_path / "set", "--engine", "classic", "--json", out)
    report = json.loads(out.read_text())
    overall = report["results"]["classic"]["all"]
    assert (overall["pairs"], overall["present"], overall["absent"]) == (2, 1, 1)
    assert overall["iou"] is not None and 0.0 <= overall["balanced_accuracy"] <= 1.0
    said = [r["score"] > 0.5 for r in report["per_pair"]["classic"]]  # pair p absent, q present
    assert (overall["recall_there"], overall["recall_absent"]) == (float(said[1]), float(not said[0]))
    assert overall["balanced_accuracy"] == (overall["recall_there"] + overall["recall_absent"]) / 2


def test_a_pair_set_says_how_its_views_relate(tmp_path):
    """Frames of one clip are the same camera at another time: a seed reference, not a cross one (which would
    let an engine match the object's surroundings as if it had not moved over them)."""
    write_davis(tmp_path / "davis", frames=6)
    made = pairs_mod.davis_pairs(tmp_path / "davis", ["toy"], min_gap=3)
    assert [p.reference for p in made] == ["seed"] and made[0].group == "davis-gap"
    index = pairs_mod.write_pair_set(tmp_path / "set", made, "test")
    assert [p.reference for p in pairs_mod.load_pairs(tmp_path / "set")] == ["seed"]

    records = json.loads(index.read_text())
    for rec in records["pairs"]:
        del rec["reference"]  # a pair set written before the field: cross, as it was scored then
    index.write_text(json.dumps(records))
    assert [p.reference for p in pairs_mod.load_pairs(tmp_path / "set")] == ["cross"]

    records["pairs"][0]["reference"] = "temporal"
    index.write_text(json.dumps(records))
    result = vggts("eval", "pairs", "--data", tmp_path / "set", "--engine", "classic", code=2)
    assert "reference 'temporal' is not one of cross, seed" in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------- a real photograph as its own target


def photo_objects():
    """scikit-image's photographs with an object region: the Felzenszwalb segment under a point (holes
    filled): coffee's cup and saucer, the astronaut's face and hair, the cameraman."""
    data = pytest.importorskip("skimage.data")
    from scipy import ndimage
    from skimage.segmentation import felzenszwalb

    for name, point, area in [
        ("coffee", (200, 300), 0.14),
        ("astronaut", (100, 220), 0.07),
        ("camera", (200, 200), 0.28),
    ]:
        image = getattr(data, name)()
        image = np.stack([image] * 3, axis=-1) if image.ndim == 2 else image
        segments = felzenszwalb(image, scale=800, sigma=0.8, min_size=2000)
        mask = ndimage.binary_fill_holes(segments == segments[point])
        assert mask.mean() == pytest.approx(area, abs=0.03), name  # the region is the object named
        yield name, image, mask


@pytest.mark.parametrize("engine_name", ["classic"])
def test_the_seed_frame_as_its_own_target_comes_back(engine_name):
    engine = make_engine(engine_name, None, "cpu")
    for name, image, mask in photo_objects():
        seed = View("cam", 0, image)
        prediction = engine.segment(seed, [Reference(seed, mask, "seed")])
        assert vos.jaccard(mask, prediction.mask) >= 0.9, name
