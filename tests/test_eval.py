"""`vggts eval`: the metrics reproduce the official Ego-Exo4D evaluator's numbers, prediction files are
checked and scored like it does, a real engine on real mp4 takes makes a file that scores, and the
rendered validation tiers give a table of tiers × directions × engines."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_app

from vggts_cli.cli.app import app
from vggts_cli.eval import metrics
from vggts_cli.masks import rle
from vggts_cli.synth.record import encode_camera
from vggts_cli.synth.scene import Scene, ego_exo_cameras

EGO, EXO = "aria01_214-1", "cam01"


def vggts(*args: str, code: int = 0):
    result = run_app(app, *args)
    assert result.exit_code == code, f"vggts {' '.join(map(str, args))}: {result.stdout}{result.stderr}"
    return result


def box(height: int, width: int, x: tuple[int, int], y: tuple[int, int]) -> np.ndarray:
    """(height, width) mask, True on columns x[0]..x[1] and rows y[0]..y[1] (inclusive)."""
    mask = np.zeros((height, width), bool)
    mask[y[0] : y[1] + 1, x[0] : x[1] + 1] = True
    return mask


# ------------------------------------------------------------------------------------------------ metrics

# anchors.md §4: a GT box spanning x 150-249, y 50-99 in a 480×270 evaluation frame.
GT_BOX = box(270, 480, (150, 249), (50, 99))


def test_metrics_reproduce_the_official_evaluator_numbers():
    perfect, shifted, empty = GT_BOX, np.roll(GT_BOX, 48, axis=1), np.zeros_like(GT_BOX)
    assert (metrics.iou(GT_BOX, perfect), metrics.boundary_f(GT_BOX, perfect)) == (1.0, 1.0)
    assert metrics.location_error(GT_BOX, perfect) == 0.0
    assert metrics.iou(GT_BOX, shifted) == pytest.approx(0.351, abs=5e-4)
    assert metrics.boundary_f(GT_BOX, shifted) == pytest.approx(0.42, abs=5e-3)
    assert metrics.location_error(GT_BOX, shifted) == pytest.approx(0.0707, abs=5e-5)
    assert (metrics.iou(GT_BOX, empty), metrics.boundary_f(GT_BOX, empty)) == (0.0, 0.0)
    assert metrics.location_error(GT_BOX, empty) == pytest.approx(0.262, abs=5e-4)
    # Present with confidence 0.1 and absent with confidence 0.2: both say "absent".
    assert metrics.balanced_accuracy([1, 0], [int(0.1 > 0.5), int(0.2 > 0.5)]) == 0.5


def test_presence_recalls_say_which_side_fails():
    """Balanced accuracy is the mean of the two recalls; they tell "never there" from "always there"."""
    truth, said = [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]
    there, absent = metrics.presence_recalls(truth, said)
    assert (there, absent) == (pytest.approx(1 / 3), 1.0)
    assert metrics.balanced_accuracy(truth, said) == pytest.approx((there + absent) / 2)
    assert metrics.presence_recalls(truth, [1, 1, 1, 1, 1]) == (1.0, 0.0)
    assert metrics.presence_recalls([1, 1], [0, 1]) == (0.5, None)  # no target without the object


def test_metric_conventions():
    nothing = np.zeros((40, 60), bool)
    assert metrics.iou(nothing, nothing) == 1.0 and metrics.boundary_f(nothing, nothing) == 1.0
    # The empty prediction's centre is (padded_H / 2, padded_W / 2) read as (x, y): swapped axes.
    assert metrics.box_centre(nothing) == (120 // 2, 140 // 2)
    assert metrics.box_centre(box(40, 60, (10, 13), (2, 3))) == (40 + 11, 40 + 2)
    # The boundary of a 3×3 block at 2..4 is shifted half a pixel towards the origin: a 4×4 ring at 1..4.
    ring = box(6, 6, (1, 4), (1, 4)) & ~box(6, 6, (2, 3), (2, 3))
    assert np.array_equal(metrics.boundary_map(box(6, 6, (2, 4), (2, 4))), ring)
    assert metrics.disk(2).sum() == 13 and metrics.disk(2)[0].tolist() == [0, 0, 1, 0, 0]
    with pytest.raises(ValueError, match="differ in size"):
        metrics.iou(nothing, np.zeros((40, 61), bool))


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1080, 1920), (270, 480)),
        ((540, 960), (270, 480)),
        ((704, 704), (480, 480)),
        ((1408, 1408), (480, 480)),
    ],
)
def test_evaluator_size(size, expected):
    assert metrics.eval_size(*size) == expected


def test_evaluator_resize_is_nearest():
    mask = box(1080, 1920, (600, 999), (200, 399))
    small = metrics.to_eval_size(mask)
    assert small.shape == (270, 480) and small.dtype == bool
    assert np.array_equal(small, box(270, 480, (150, 249), (50, 99)))


# ------------------------------------------------------------------------------------- Ego-Exo4D scoring


def encoded(mask: np.ndarray) -> dict:
    return rle.encode(mask)


def ground_truth(ego_masks: dict, exo_masks: dict, ego_annotated: list, exo_annotated: list) -> dict:
    """A processed GT file with one take ('take-1') and one object ('knife') seen by EGO and EXO."""
    masks = {
        EGO: {f: encoded(m) for f, m in ego_masks.items()},
        EXO: {f: encoded(m) for f, m in exo_masks.items()},
    }
    return {
        "annotations": {
            "take-1": {
                "masks": {"knife": masks},
                "annotated_frames": {"knife": {EGO: ego_annotated, EXO: exo_annotated}},
                "subsample_idx": [0, 30, 60],
            }
        }
    }


def predictions(ego_exo: dict, exo_ego: dict) -> dict:
    """A submission; each argument maps frame -> (mask at evaluator size, confidence)."""

    def block(pair: str, entries: dict) -> dict:
        frames = {f: {"pred_mask": encoded(m), "confidence": c} for f, (m, c) in entries.items()}
        take = {"masks": {"knife": {pair: frames}}, "subsample_idx": [0, 30, 60]}
        return {"version": "test", "challenge": "correspondence", "results": {"take-1": take}}

    return {"ego-exo": block(f"{EGO}_{EXO}", ego_exo), "exo-ego": block(f"{EXO}_{EGO}", exo_ego)}


# Exo GT at 960×540 (evaluated at 480×270), ego GT at 1408×1408 (evaluated at 480×480).
EXO_BOX = box(540, 960, (300, 499), (100, 199))  # GT_BOX at the evaluator's size
EGO_BOX = box(1408, 1408, (300, 799), (600, 999))
# Frame 0: visible in both. Frame 30: absent from exo. Frame 60: ego only, exo did not annotate it.
GT = ground_truth({"0": EGO_BOX, "30": EGO_BOX, "60": EGO_BOX}, {"0": EXO_BOX}, [0, 30, 60], [0, 30])


def write(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def score(tmp_path: Path, preds: dict, gt: dict = GT) -> dict:
    gt_file, pred_file = write(tmp_path, "gt.json", gt), write(tmp_path, "pred.json", preds)
    return json.loads(
        vggts("eval", "egoexo", "score", "--gt", gt_file, "--pred", pred_file, "--json", "-").stdout
    )


def test_score_perfect_predictions(tmp_path):
    exo_eval, ego_eval = metrics.to_eval_size(EXO_BOX), metrics.to_eval_size(EGO_BOX)
    nothing = np.zeros((270, 480), bool)
    preds = predictions(
        {"0": (exo_eval, 0.9), "30": (nothing, 0.2), "60": (nothing, 0.0)},
        {"0": (ego_eval, 0.7)},
    )
    scores = score(tmp_path, preds)["scores"]
    # ego→exo scores frames 0 (visible) and 30 (absent); 60 is a query the exo camera did not annotate.
    assert scores["ego-exo"] == {
        "balanced_accuracy": 1.0,
        "recall_there": 1.0,
        "recall_absent": 1.0,
        "iou": 1.0,
        "location_error": 0.0,
        "contour_accuracy": 1.0,
        "visible_miou": 100.0,
        "frames": 2,
        "visible_frames": 1,
        "visible_pairs": 1,
    }
    # exo→ego: the only exo query (frame 0) is visible in ego; one class only, balanced accuracy = recall.
    assert scores["exo-ego"]["frames"] == 1 and scores["exo-ego"]["iou"] == 1.0
    assert scores["exo-ego"]["balanced_accuracy"] == 1.0
    assert (scores["exo-ego"]["recall_there"], scores["exo-ego"]["recall_absent"]) == (1.0, None)


def test_score_reproduces_the_evaluator_on_a_file(tmp_path):
    """The anchors' empty-prediction case through the file path; confidence never changes the IoU."""
    nothing = np.zeros((270, 480), bool)
    preds = predictions(
        {"0": (nothing, 0.9), "30": (nothing, 0.1), "60": (nothing, 0.0)},
        {"0": (np.roll(metrics.to_eval_size(EGO_BOX), 48, axis=1), 0.1)},
    )
    result = score(tmp_path, preds)["scores"]
    ego_exo, exo_ego = result["ego-exo"], result["exo-ego"]
    assert (ego_exo["iou"], ego_exo["contour_accuracy"]) == (0.0, 0.0)
    assert ego_exo["location_error"] == pytest.approx(0.262, abs=5e-4)
    assert ego_exo["balanced_accuracy"] == 1.0  # said "present" where visible, "absent" where absent
    assert exo_ego["location_error"] == pytest.approx(48 / np.hypot(480, 480))
    assert 0 < exo_ego["iou"] < 1 and exo_ego["balanced_accuracy"] == 0.0


def test_score_prints_a_table(tmp_path):
    exo_eval, nothing = metrics.to_eval_size(EXO_BOX), np.zeros((270, 480), bool)
    preds = predictions(
        {"0": (exo_eval, 0.9), "30": (nothing, 0.2), "60": (nothing, 0.0)},
        {"0": (np.zeros((480, 480), bool), 0)},
    )
    gt_file, pred_file = write(tmp_path, "gt.json", GT), write(tmp_path, "pred.json", preds)
    out = tmp_path / "scores.json"
    text = vggts("eval", "egoexo", "score", "--gt", gt_file, "--pred", pred_file, "--json", out).stdout
    assert "ego-exo" in text and "exo-ego" in text and "visible-pairs mIoU" in text
    assert json.loads(out.read_text())["scores"]["ego-exo"]["iou"] == 1.0


def broken(preds: dict, path: tuple, value=None) -> dict:
    """`preds` (copied) with the key at `path` removed, or set to `value`."""
    preds = json.loads(json.dumps(preds))
    node = preds
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return preds


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("exo-ego", "results", "take-1"), None, "exo-ego: take 'take-1' missing"),
        (("ego-exo", "results", "take-9"), {}, "ego-exo: take 'take-9' is not in the ground truth"),
        (("ego-exo", "results", "take-1", "masks", "knife"), None, "take take-1: object 'knife' missing"),
        (
            ("ego-exo", "results", "take-1", "masks", "knife", f"{EGO}_{EXO}"),
            None,
            f"object 'knife': camera pair '{EGO}_{EXO}' missing",
        ),
        (
            ("ego-exo", "results", "take-1", "masks", "knife", f"{EGO}_{EXO}", "60"),
            None,
            f"pair '{EGO}_{EXO}': frame 60: missing",
        ),
        (
            ("exo-ego", "results", "take-1", "masks", "knife", f"{EXO}_{EGO}", "0", "confidence"),
            None,
            "frame 0: no 'confidence'",
        ),
        (
            ("ego-exo", "results", "take-1", "masks", "knife", f"{EGO}_{EXO}", "0", "pred_mask"),
            encoded(EXO_BOX),
            "frame 0: pred_mask is 540x960, the evaluator needs 270x480",
        ),
    ],
)
def test_score_rejects_incomplete_predictions_in_one_line(tmp_path, path, value, message):
    nothing = np.zeros((270, 480), bool)
    good = predictions(
        {"0": (nothing, 0.9), "30": (nothing, 0.2), "60": (nothing, 0.0)},
        {"0": (np.zeros((480, 480), bool), 0)},
    )
    gt_file, pred_file = (
        write(tmp_path, "gt.json", GT),
        write(tmp_path, "pred.json", broken(good, path, value)),
    )
    result = vggts("eval", "egoexo", "score", "--gt", gt_file, "--pred", pred_file, code=1)
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_score_rejects_files_that_are_not_the_formats(tmp_path):
    gt_file = write(tmp_path, "gt.json", GT)
    result = vggts(
        "eval", "egoexo", "score", "--gt", gt_file, "--pred", write(tmp_path, "p.json", {"x": 1}), code=1
    )
    assert "neither 'ego-exo' nor 'exo-ego'" in result.stderr
    (tmp_path / "bad.json").write_text("{")
    result = vggts("eval", "egoexo", "score", "--gt", tmp_path / "bad.json", "--pred", gt_file, code=1)
    assert "not valid JSON (ground truth)" in result.stderr
    result = vggts("eval", "egoexo", "score", "--gt", gt_file, "--pred", tmp_path / "none.json", code=1)
    assert "no such file (predictions)" in result.stderr


# ------------------------------------------------------------------------ Ego-Exo4D predictions from mp4s

FRAMES = 30


def write_take(tmp_path: Path) -> tuple[Path, dict]:
    """A frame-aligned take ('my-take', uid 'uid-1') as real mp4s, and its processed GT.

    GT masks are the renderer's exact masks, stored at twice the video size (as Ego-Exo4D annotates exo
    cameras above the size of the videos one works with). Frames 0 and 10: visible in both; frame 20: the
    exo camera annotated it but has no mask (absent); frame 25: ego only, exo did not annotate it.
    """
    scene = Scene.generate(3, duration=1.0)
    ego, exo = ego_exo_cameras(1.0)
    cams = {
        EGO: replace(ego, width=320, height=240, zoom=ego.zoom / 2, fps=Fraction(30), num_frames=FRAMES),
        EXO: replace(exo, width=480, height=270, zoom=exo.zoom / 2, fps=Fraction(30), num_frames=FRAMES),
    }
    folder = tmp_path / "takes" / "my-take" / "frame_aligned_videos"
    folder.mkdir(parents=True)
    truth = {}
    for name, camera in cams.items():
        encode_camera(folder / f"{name}.mp4", scene, camera, crf=18)
        truth[name] = {}
        for frame in (0, 10, 20, 25):
            mask = scene.render(camera, frame)[1]
            truth[name][str(frame)] = cv2.resize(mask.astype(np.uint8), None, fx=2, fy=2) > 0
    del truth[EXO]["20"], truth[EXO]["25"]
    gt = ground_truth(truth[EGO], truth[EXO], [0, 10, 20, 25], [0, 10, 20])
    gt["annotations"] = {"uid-1": gt["annotations"]["take-1"]}
    return tmp_path / "takes", gt


def test_egoexo_run_makes_a_file_that_scores(tmp_path):
    takes, gt = write_take(tmp_path)
    gt_file = write(tmp_path, "gt.json", gt)
    relations = write(tmp_path, "relations_val.json", {"annotations": {"uid-1": {"take_name": "my-take"}}})
    pred_file = tmp_path / "submission.json"
    run = ("eval", "egoexo", "run", "--gt", gt_file, "--takes", takes, "--engine", "classic")
    result = vggts(*run, "--out", pred_file, code=1)  # folders are named by take_name, not uid
    assert "my-take" not in result.stderr and "uid-1" in result.stderr and "relations" in result.stderr
    vggts(*run, "--relations", relations, "--out", pred_file)

    preds = json.loads(pred_file.read_text())
    ego_exo = preds["ego-exo"]["results"]["uid-1"]["masks"]["knife"][f"{EGO}_{EXO}"]
    exo_ego = preds["exo-ego"]["results"]["uid-1"]["masks"]["knife"][f"{EXO}_{EGO}"]
    assert sorted(ego_exo) == ["0", "10", "20", "25"] and sorted(exo_ego) == ["0", "10"]
    # At the evaluator's size: exo GT 960×540 -> 480×270, ego GT 640×480 -> 480×360.
    assert {tuple(e["pred_mask"]["size"]) for e in ego_exo.values()} == {(270, 480)}
    assert {tuple(e["pred_mask"]["size"]) for e in exo_ego.values()} == {(360, 480)}
    assert ego_exo["25"]["confidence"] == 0.0 and not rle.decode(ego_exo["25"]["pred_mask"]).any()
    assert preds["ego-exo"]["results"]["uid-1"]["subsample_idx"] == [0, 30, 60]

    scores = json.loads(
        vggts("eval", "egoexo", "score", "--gt", gt_file, "--pred", pred_file, "--json", "-").stdout
    )["scores"]
    assert scores["ego-exo"]["frames"] == 3 and scores["ego-exo"]["visible_frames"] == 2
    assert scores["exo-ego"]["frames"] == 2 and scores["exo-ego"]["visible_pairs"] == 2
    # The classic engine finds the object from the close head camera in the wide fixed one.
    assert scores["ego-exo"]["iou"] > 0.8 and scores["ego-exo"]["location_error"] < 0.02, scores
    # The scorer reads back exactly what the runner wrote, at the right place.
    truth = gt["annotations"]["uid-1"]["masks"]["knife"][EGO]
    ious = [
        metrics.iou(metrics.to_eval_size(rle.decode(truth[f])), rle.decode(exo_ego[f]["pred_mask"]))
        for f in exo_ego
    ]
    assert scores["exo-ego"]["iou"] == pytest.approx(np.mean(ious))


# ---------------------------------------------------------------------------------- rendered validation


def test_rendered_rejects_unknown_tiers_and_stray_model():
    result = vggts("eval", "rendered", "--tiers", "easy,extreme", code=2)
    assert "--tiers takes a comma list of easy, medium, hard" in result.stderr
    result = vggts("eval", "rendered", "--engine", "classic", "--model", "vggt-s-1b", code=2)
    assert "--model applies to --engine vggts" in result.stderr
    result = vggts("eval", "rendered", "--engine", "classic", "--adapt", "10", code=2)
    assert "--adapt applies to --engine vggts" in result.stderr
    result = vggts("eval", "rendered", "--engine", "vggts", "--detail", "fine", code=2)
    assert "--detail applies to --engine classic" in result.stderr


def test_rendered_without_scikit_image_is_refused(tmp_path):
    """Without the photographs the generator would render other scenes: refuse, one line, nothing written."""
    script = (
        "import sys; sys.modules['skimage'] = None; sys.argv[0] = 'vggts'; "
        "from vggts_cli.cli.app import main; main()"
    )
    out = tmp_path / "r.json"
    args = ["eval", "rendered", "--engine", "classic", "--pairs", "1", "--json", str(out)]
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "pip install 'vggts[train]'" in proc.stderr and not out.exists()


def test_rendered_table_of_tiers_directions_engines(tmp_path):
    from vggts_cli.synth import rig

    out = tmp_path / "rendered.json"
    args = ("eval", "rendered", "--engine", "classic", "--pairs", "2", "--tiers", "easy", "--json", out)
    text = vggts(*args).stdout
    assert "ego-exo" in text and "exo-ego" in text and "classic" in text
    result = json.loads(out.read_text())
    assert (result["tiers"], result["engines"], result["pairs"]) == (["easy"], ["classic"], 2)
    pairs = [rig.render_rig_pair(seed, "easy") for seed in rig.validation_seeds("easy", 2)]
    for direction, (source, target) in {
        "ego-exo": ("ego_mask", "exo_mask"),
        "exo-ego": ("exo_mask", "ego_mask"),
    }.items():
        cell = result["results"]["easy"][direction]["classic"]
        # A query needs the object in the source view; the target may be empty (visibility only).
        queries = [p for p in pairs if getattr(p, source).any()]
        assert cell["frames"] == len(queries)
        assert (
            cell["visible_frames"] == cell["visible_pairs"] == sum(getattr(p, target).any() for p in queries)
        )
        assert cell["seconds_per_pair"] > 0
        assert 0 <= cell["iou"] <= 1 and 0 <= cell["contour_accuracy"] <= 1 and cell["location_error"] >= 0
        # The paper's mIoU (at full size) and the evaluator's IoU (at 480) see the same pairs.
        assert cell["visible_miou"] == pytest.approx(100 * cell["iou"], abs=5)
