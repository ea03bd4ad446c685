"""Target frames per second of the classic engine on synthetic two-camera scenes.

Runs the propagation loop's call pattern: at each instant the seed camera's frame (refs: seed, temporal),
then the second camera's (refs: cross, seed, temporal). The second camera sees the first through a fixed
perspective warp. Usage: python benchmarks/classic_engine.py [--frames 40] [--grabcut]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.test_classic import iou, moving_scene  # noqa: E402  (scene builders shared with the tests)
from vggts_cli.engines.base import Reference, View  # noqa: E402
from vggts_cli.engines.classic.engine import ClassicEngine  # noqa: E402


def second_camera(frames: list, height: int, width: int) -> list:
    """The same scene seen through a perspective warp (a second viewpoint), at the same size."""
    corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    shift = np.float32([[0.08, 0.05], [-0.05, 0.1], [-0.1, -0.04], [0.06, -0.08]]) * np.float32(
        [width, height]
    )
    moved = corners + shift
    homography = cv2.getPerspectiveTransform(corners, moved)
    return [
        (
            cv2.warpPerspective(image, homography, (width, height)),
            cv2.warpPerspective(mask.astype(np.uint8), homography, (width, height), flags=cv2.INTER_NEAREST)
            > 0,
        )
        for image, mask in frames
    ]


def run(engine: ClassicEngine, height: int, width: int, count: int) -> None:
    """Propagate through `count` instants of a (height, width) scene and print frames/s per camera."""
    cameras = {"ego": moving_scene(height, width, count)}
    cameras["exo"] = second_camera(cameras["ego"], height, width)
    seconds = dict.fromkeys(cameras, 0.0)
    ious: dict[str, list[float]] = {camera: [] for camera in cameras}

    def segment(camera: str, t: int, refs: list[Reference]) -> Reference:
        image, truth = cameras[camera][t]
        view = View(camera, t, image)
        start = time.perf_counter()
        prediction = engine.segment(view, refs)
        seconds[camera] += time.perf_counter() - start
        ious[camera].append(iou(prediction.mask, truth))
        return Reference(view, prediction.mask, "temporal")

    seed = Reference(View("ego", 0, cameras["ego"][0][0]), cameras["ego"][0][1], "seed")
    ego = Reference(seed.view, seed.mask, "temporal")
    exo = None
    for t in range(count):
        if t > 0:
            ego = segment("ego", t, [seed, ego])
        cross = Reference(ego.view, ego.mask, "cross")
        exo = segment("exo", t, [cross, seed] + ([exo] if exo else []))
    for camera, values in ious.items():
        print(
            f"{width}x{height} {camera}: {len(values) / seconds[camera]:6.1f} target frames/s over "
            f"{len(values)} frames, IoU mean {np.mean(values):.3f} min {np.min(values):.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--work-size", type=int, default=480)
    parser.add_argument("--grabcut", action="store_true")
    args = parser.parse_args()
    print(f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads")
    for height, width in ((480, 640), (540, 960)):
        engine = ClassicEngine(work_size=args.work_size, grabcut=args.grabcut)
        run(engine, height, width, args.frames)


if __name__ == "__main__":
    main()
