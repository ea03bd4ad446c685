"""Several objects in one job, and one camera alone: real encoded videos of rendered scenes whose objects'
masks are exact (one scene per tile of the frame), through `vggts propagate` and `vggts batch`."""

from __future__ import annotations

import json

import av
import cv2
import numpy as np
import pytest
from media import ffprobe
from models import make_tiny_checkpoint
from recordings import make_tiled_recording

from vggts_cli.cli.app import app
from vggts_cli.engines.learned.adapt import AdaptConfig
from vggts_cli.engines.learned.engine import LearnedEngine
from vggts_cli.jobs import PropagateJob, check_job
from vggts_cli.masks import rle
from vggts_cli.masks.io import is_label_map, load_seed_objects
from vggts_cli.masks.objects import TrackedObject, exclusive, label_map
from vggts_cli.masks.ops import iou
from vggts_cli.model.configs import VGGT_S_LITE
from vggts_cli.pipeline.run import run
from vggts_cli.sinks.base import SinkOptions
from vggts_cli.sinks.redact import redacted_objects

CAMERAS = ("ego", "exo")


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """Three objects side by side, 1 s of the example rig at 0.3 scale."""
    return make_tiled_recording(tmp_path_factory.mktemp("three"), objects=3)


@pytest.fixture(scope="module")
def lite_checkpoint(tmp_path_factory):
    # The small shipped architecture (random weights): its 112 px input keeps the run short.
    return make_tiny_checkpoint(tmp_path_factory.mktemp("model") / "lite.safetensors", cfg=VGGT_S_LITE)


def _per_object(masks_json: dict) -> dict[int, list[np.ndarray]]:
    """masks.json -> object id -> its masks in frame order."""
    masks: dict[int, list[np.ndarray]] = {o["id"]: [] for o in masks_json["objects"]}
    for record in masks_json["frames"]:
        masks[record["object"]].append(rle.decode(record["segmentation"]))
    return masks


def _alone(cli, rec, tmp_path) -> list[np.ndarray]:
    """The other camera's masks of the first object, tracked alone."""
    seed = rec.label_png(tmp_path / "alone.png", ids=(1,))
    args = ["--src", rec.videos[0], "--dst", rec.videos[1], "--mask", seed, "--out", tmp_path / "alone"]
    assert cli(app, "propagate", *args, "--engine", "classic").exit_code == 0
    return _per_object(json.loads((tmp_path / "alone" / "exo" / "masks.json").read_text()))[1]


def _mean_iou(rec, cam: int, obj: int, masks: list[np.ndarray]) -> float:
    return float(np.mean([iou(m, rec.truth(cam, obj, i)) for i, m in enumerate(masks)]))


def test_label_map_with_a_gap_keeps_its_ids_and_finds_each_object(cli, three, tmp_path):
    seed = three.label_png(tmp_path / "labels.png", ids=(1, 3, 7))
    out = tmp_path / "out"
    args = ["--src", three.videos[0], "--dst", three.videos[1], "--mask", seed, "--out", out]
    result = cli(app, "propagate", *args, "--engine", "classic", "--write", "rle,png,overlay")
    assert result.exit_code == 0, result.output
    for cam, name in enumerate(CAMERAS):
        data = json.loads((out / name / "masks.json").read_text())
        assert data["objects"] == [{"id": i, "name": f"object-{i}"} for i in (1, 3, 7)]
        assert len(data["frames"]) == 3 * data["num_frames"]
        masks = _per_object(data)
        if cam == 0:
            for obj, object_id in enumerate((1, 3, 7)):
                assert _mean_iou(three, cam, obj, masks[object_id]) > 0.85, object_id
        else:  # the other camera is hard at this size; tracked with the others, an object does as alone
            alone = _alone(cli, three, tmp_path)
            assert _mean_iou(three, cam, 0, masks[1]) >= _mean_iou(three, cam, 0, alone) - 0.02
        stacked = np.stack([np.stack(m) for m in masks.values()])  # (O, T, H, W)
        assert stacked.sum(axis=0).max() <= 1  # one object per pixel
        labels = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted((out / name / "masks").iterdir())]
        assert len(labels) == data["num_frames"]
        assert set(np.unique(np.stack(labels))) <= {0, 1, 3, 7}
        np.testing.assert_array_equal(labels[5] == 3, masks[3][5])
        frames = ffprobe(
            out / name / "overlay.mp4", "-count_frames", "-show_entries", "stream=nb_read_frames"
        )
        assert int(frames["streams"][0]["nb_read_frames"]) == data["num_frames"]


def test_binary_masks_are_named_by_their_files_and_redaction_can_pick_objects(cli, three, tmp_path):
    seeds = []
    for obj, name in enumerate(("face", "badge", "screen")):
        seeds += ["--mask", tmp_path / f"{name}.png"]
        cv2.imwrite(str(seeds[-1]), three.truth(0, obj, 0).astype(np.uint8) * 255)
    out = tmp_path / "out"
    args = ["--src", three.videos[0], *seeds, "--out", out, "--engine", "classic"]
    fill = ["--redact", "fill", "--fill-color", "#00ff00", "--redact-objects", "badge"]
    result = cli(app, "propagate", *args, "--write", "rle,redact", *fill)
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == ["ego"]  # one camera alone
    data = json.loads((out / "ego" / "masks.json").read_text())
    assert [o["name"] for o in data["objects"]] == ["face", "badge", "screen"]
    masks = _per_object(data)
    for obj in range(3):
        assert _mean_iou(three, 0, obj, masks[obj + 1]) > 0.85
    with av.open(str(out / "ego" / "redacted.mp4")) as video:
        frame = next(video.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    green = np.abs(frame - [0, 255, 0]).sum(axis=-1) < 60
    assert green[three.truth(0, 1, 0)].mean() > 0.95  # the badge is filled
    assert green[three.truth(0, 0, 0)].mean() < 0.05 and green[three.truth(0, 2, 0)].mean() < 0.05


def test_a_batch_row_with_two_masks_and_no_dst(cli, three, tmp_path):
    for obj in range(2):
        cv2.imwrite(str(tmp_path / f"m{obj}.png"), three.truth(0, obj, 0).astype(np.uint8) * 255)
    manifest = tmp_path / "jobs.jsonl"
    row = {"id": "two", "src": str(three.videos[0]), "mask": ["m0.png", "m1.png"], "engine": "classic"}
    manifest.write_text(json.dumps(row) + "\n")
    result = cli(app, "batch", manifest, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "out" / "two" / "ego" / "masks.json").read_text())
    assert [o["name"] for o in data["objects"]] == ["m0", "m1"]


def test_overlapping_seed_masks_keep_each_pixel_for_the_first_listed(three, tmp_path):
    first, second = np.zeros((2, *three.truth(0, 0, 0).shape), bool)
    first[10:40, 10:40], second[20:50, 20:50] = True, True
    paths = []
    for n, mask in enumerate((first, second)):
        paths.append(tmp_path / f"m{n}.png")
        cv2.imwrite(str(paths[-1]), mask.astype(np.uint8) * 255)
    prepared = check_job(PropagateJob(src=three.videos[0], masks=tuple(paths), out=tmp_path / "o"))
    np.testing.assert_array_equal(prepared.seed_masks[0], first)
    np.testing.assert_array_equal(prepared.seed_masks[1], second & ~first)


def test_exclusive_gives_a_contested_pixel_to_the_more_confident_object():
    masks = np.zeros((3, 4, 4), bool)
    masks[:, 1:3, 1:3] = True  # all three claim the centre
    masks[2, 0, 0] = True
    out = exclusive(masks, [0.5, 0.9, 0.9])
    assert out[1, 1:3, 1:3].all() and not out[0].any() and out[2].sum() == 1  # tie: the lower index
    assert out.sum(axis=0).max() == 1


def test_label_maps_and_binary_masks_are_told_apart(tmp_path):
    antialiased = np.zeros((8, 8), np.uint8)
    antialiased[2:6, 2:6], antialiased[2, 2] = 255, 128  # white with a grey edge pixel: one object
    assert not is_label_map(antialiased)
    sixteen = np.zeros((8, 8), np.uint16)
    sixteen[:4], sixteen[4:, :2] = 300, 2
    assert is_label_map(sixteen)
    cv2.imwrite(str(tmp_path / "l.png"), sixteen)
    masks, objects = load_seed_objects([tmp_path / "l.png"], 8, 8)
    assert objects == (TrackedObject(2, "object-2"), TrackedObject(300, "object-300"))
    assert label_map(masks, objects).dtype == np.uint16
    np.testing.assert_array_equal(label_map(masks, objects), sixteen)


def test_unknown_redact_object_is_refused_naming_the_objects(three, tmp_path):
    seed = three.label_png(tmp_path / "labels.png", ids=(1, 2))
    job = PropagateJob(
        src=three.videos[0],
        masks=(seed,),
        out=tmp_path / "o",
        sink_options=SinkOptions(redact_objects=("x",)),
    )
    with pytest.raises(
        Exception, match="--redact-objects names 'x', but the objects are: object-1, object-2"
    ):
        check_job(job)
    objects = (TrackedObject(1, "a"), TrackedObject(2, "b"))
    assert redacted_objects(objects, SinkOptions(redact_objects=("2",))) == [1]


def test_learned_engine_objects_share_each_frames_backbone_pass(lite_checkpoint, tmp_path):
    """With focus off (whole frames), two objects cost the backbone exactly what one does."""
    three = make_tiled_recording(tmp_path / "rec", objects=2, seconds=0.2)
    calls = []

    def run_objects(ids: tuple[int, ...]) -> None:
        engine = LearnedEngine.load(str(lite_checkpoint), "cpu", adapt=AdaptConfig(steps=0))
        engine.focus = False
        hook = engine.model.aggregator.register_forward_hook(lambda *a: calls.append(len(ids)))
        seed = three.label_png(tmp_path / f"seed{len(ids)}.png", ids=ids)
        out = tmp_path / f"out{len(ids)}"
        job = PropagateJob(
            src=three.videos[0], dsts=(three.videos[1],), masks=(seed,), out=out, engine="vggts"
        )
        run(check_job(job), engine)
        hook.remove()

    run_objects((1,))
    run_objects((1, 2))
    assert calls.count(1) == calls.count(2) > 0
