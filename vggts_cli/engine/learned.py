"""The learned engine: VGGT-Segmentor on [reference, target] pairs.

Per target frame, every reference with a non-empty mask makes one pair: K-Means points of the reference
mask are tracked into the target and, with the reference mask, prompt the Union Segmentation Head. The
references' logits are fused by a weighted mean and mapped back to the target frame.

Two schedules for the backbone (the expensive, mask-free part):
- "windowed" (default): each frame goes through the backbone once, as the pair [seed frame, frame], and
  announced frames (`prepare`) go in batches of `window` pairs. A target's pairs then reuse cached
  features: its seed pair is exactly the pair the backbone saw; a temporal or cross reference brings the
  features of its own [seed, reference] pass.
- "pair" (the official pipeline's way): every [reference, target] pair through the whole model on its own.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import torch

from vggts_cli.engine.backoff import WindowBackoff, free_cuda_memory, window_from_memory
from vggts_cli.engine.base import Engine, Prediction, Reference, ReferenceKind, View
from vggts_cli.errors import UsageError
from vggts_cli.model.crops import resize_logits
from vggts_cli.model.union_head import presence_score
from vggts_cli.model.vggts import DEFAULT_MODEL, VGGTS, load_model, resolve_device

# Weights of the fused logits. The seed is the user's own mask and never drifts; a cross reference is
# another camera at the same instant, so the object is in the same pose (the ego↔exo setting VGGT-S is
# trained for). A temporal reference looks most like the target but carries our own earlier prediction,
# errors included, so it counts half: two anchors outvote a drifting track where they disagree.
KIND_WEIGHTS: dict[ReferenceKind, float] = {"seed": 1.0, "cross": 1.0, "temporal": 0.5}
PAD_VALUE = 114  # letterbox padding (grey), as in VGGT-S's exo-frame preprocessing


@dataclass(frozen=True)
class Letterbox:
    """A frame of `frame_hw` = (H, W) resized, aspect kept, to `content_hw` = (h, w) at the top-left of a
    `size`×`size` model input; the rest (bottom/right) is padding."""

    frame_hw: tuple[int, int]
    content_hw: tuple[int, int]
    size: int

    @classmethod
    def fit(cls, frame_hw: tuple[int, int], size: int) -> Letterbox:
        """The largest aspect-preserving fit of a frame (H, W) into `size`×`size`."""
        height, width = frame_hw
        scale = size / max(height, width)
        content = (min(size, max(1, round(height * scale))), min(size, max(1, round(width * scale))))
        return cls(frame_hw=(height, width), content_hw=content, size=size)

    def image(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (size, size, 3) uint8 (area-averaged when shrinking)."""
        h, w = self.content_hw
        shrink = h < self.frame_hw[0]
        resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        canvas = np.full((self.size, self.size, 3), PAD_VALUE, dtype=np.uint8)
        canvas[:h, :w] = resized
        return canvas

    def mask(self, mask: np.ndarray) -> np.ndarray:
        """(H, W) bool -> (size, size) bool: pixels at least half covered by the object, or, when that
        leaves nothing (an object thinner than a model pixel), every pixel the object touches."""
        h, w = self.content_hw
        coverage = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        resized = coverage >= 0.5
        if not resized.any():
            resized = coverage > 0
        canvas = np.zeros((self.size, self.size), dtype=bool)
        canvas[:h, :w] = resized
        return canvas

    def content(self, logits: torch.Tensor) -> torch.Tensor:
        """(size, size) -> the (h, w) part that is image, not padding."""
        h, w = self.content_hw
        return logits[:h, :w]

    def unmap_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Model-input logits (size, size) -> frame logits (H, W): crop the padding, resize bilinearly."""
        return resize_logits(self.content(logits), self.frame_hw)


def fuse_logits(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean of per-reference logits (R, H, W) with weights (R,) > 0 -> (H, W)."""
    weights = weights.to(logits)
    return torch.einsum("rhw,r->hw", logits, weights / weights.sum())


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(images).movedim(-1, -3).float() / 255


Schedule = Literal["windowed", "pair"]
SCHEDULES: tuple[Schedule, ...] = ("windowed", "pair")
CPU_WINDOW = 4  # pairs per backbone batch on the CPU: larger batches gain nothing there
MAX_GPU_WINDOW = 32
FEATURE_CACHE = 64  # frames whose features are kept (announced targets + recent references)


class LearnedEngine(Engine):
    """VGGT-Segmentor: bf16 autocast on CUDA, fp32 on the CPU; deterministic on the CPU."""

    name = "vggts"

    def __init__(
        self,
        model: VGGTS,
        device: str | torch.device = "cpu",
        schedule: Schedule = "windowed",
        window: int | None = None,
    ) -> None:
        model.check_segmentable()
        if schedule not in SCHEDULES:
            raise UsageError(f"schedule {schedule!r} is not one of {', '.join(SCHEDULES)}")
        self.device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.size = model.cfg.img_size
        self.schedule = schedule
        # Pairs per backbone batch: given, else as many as free GPU memory holds (CPU: a few); an
        # out-of-memory halves it for the rest of the engine's life and retries the same frames.
        self._backoff = WindowBackoff(window or self._window_for_device())
        # Per job (keyed by the seed View object): (camera, index) -> (seed features, frame features),
        # each (C, h, w), from the frame's [seed, frame] backbone pass; and K-Means points of reference masks.
        self._seed: View | None = None
        self._features: OrderedDict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._points: OrderedDict[tuple[str, int, str], torch.Tensor] = OrderedDict()

    @classmethod
    def load(
        cls, model: str | None, device: str, schedule: Schedule = "windowed", window: int | None = None
    ) -> LearnedEngine:
        """The engine for `--model` (a vggts model file or name; None = the shipped default) on `--device`."""
        target = resolve_device(device)
        return cls(load_model(model or DEFAULT_MODEL, target), target, schedule, window)

    @property
    def window(self) -> int:  # type: ignore[override]
        return self._backoff.window

    def _window_for_device(self) -> int:
        free = free_cuda_memory(self.device)
        if free is None:
            return CPU_WINDOW
        return window_from_memory(free, self._bytes_per_pair(), reserve=2 * 2**30, lo=1, hi=MAX_GPU_WINDOW)

    def _bytes_per_pair(self) -> int:
        """A generous estimate of the backbone's working memory for one [seed, frame] pair: the
        aggregator's tokens of the kept layers and the DPT's largest maps, in bf16, with slack."""
        cfg = self.model.cfg
        tokens = 2 * (cfg.img_size // cfg.aggregator.dino.patch_size) ** 2
        aggregator = tokens * 2 * cfg.aggregator.embed_dim * (len(cfg.dpt.layer_idx) + 4) * 2
        dpt = 2 * max(cfg.dpt.out_channels) * (cfg.img_size // 2) ** 2 * 4 * 2
        return 4 * (aggregator + dpt)

    # -- the windowed schedule's feature cache ----------------------------------------------------------

    def _start_job(self, seed: View) -> None:
        if self._seed is not seed:
            self._seed = seed
            self._features.clear()
            self._points.clear()

    def _upload(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [0, 1] on the device; to a GPU as uint8 from
        pinned memory (a quarter of the bytes, an asynchronous copy), converted there."""
        if self.device.type != "cuda":
            return to_tensor(images)
        pinned = torch.from_numpy(images).pin_memory()
        return pinned.to(self.device, non_blocking=True).movedim(-1, -3).float() / 255

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda")

    def _compute_features(self, seed: View, views: Sequence[View]) -> None:
        """Backbone features of [seed, view] pairs, `window` pairs per batch, into the cache."""
        seed_image = Letterbox.fit(seed.image.shape[:2], self.size).image(seed.image)

        def window_features(chunk: Sequence[View]) -> list[torch.Tensor]:
            pairs = np.stack(
                [
                    np.stack([seed_image, Letterbox.fit(v.image.shape[:2], self.size).image(v.image)])
                    for v in chunk
                ]
            )
            with torch.inference_mode(), self._autocast():
                return list(self.model.features(self._upload(pairs)).float())

        for view, fmap in zip(views, self._backoff.run(window_features, views), strict=True):
            self._features[(view.camera, view.index)] = (fmap[0], fmap[1])
        while len(self._features) > FEATURE_CACHE:
            self._features.popitem(last=False)

    def prepare(self, seed: View, targets: Sequence[View]) -> None:
        """Compute the backbone features of the announced targets in batches (windowed schedule only)."""
        if self.schedule != "windowed":
            return
        self._start_job(seed)
        todo = [v for v in targets if (v.camera, v.index) not in self._features]
        self._compute_features(seed, todo)

    def _cached(self, seed: View, view: View) -> tuple[torch.Tensor, torch.Tensor]:
        key = (view.camera, view.index)
        if key not in self._features:
            self._compute_features(seed, [view])
        self._features.move_to_end(key)
        return self._features[key]

    def _source_points(self, ref: Reference, mask: np.ndarray) -> torch.Tensor:
        """K-Means points (N, 2) of a reference mask, computed once per reference frame and kind."""
        key = (ref.view.camera, ref.view.index, ref.kind)
        if key not in self._points:
            self._points[key] = self.model.head.source_points(torch.from_numpy(mask)[None])[0]
            while len(self._points) > FEATURE_CACHE:
                self._points.popitem(last=False)
        return self._points[key]

    # -- segmentation -----------------------------------------------------------------------------------

    def segment(self, target: View, refs: Sequence[Reference]) -> Prediction:
        """Fuse the predictions of the usable references (non-empty masks; the seed is left out when a cross
        reference is given); none usable -> empty mask, score 0."""
        frame_hw = target.image.shape[:2]
        usable = [ref for ref in refs if ref.mask.any()]
        if any(ref.kind == "cross" for ref in usable):
            # Another camera at this very instant already carries the seed's anchoring (its mask was
            # predicted from the seed) without the seed's time gap; one pair fewer per frame.
            usable = [ref for ref in usable if ref.kind != "seed"]
        if not usable:
            return Prediction(mask=np.zeros(frame_hw, dtype=bool), score=0.0)
        for ref in usable:
            if ref.mask.shape != ref.view.image.shape[:2]:
                raise ValueError(
                    f"reference mask {ref.mask.shape} does not match its frame {ref.view.image.shape[:2]}"
                )
        box = Letterbox.fit(frame_hw, self.size)
        ref_boxes = [Letterbox.fit(ref.view.image.shape[:2], self.size) for ref in usable]
        masks = np.stack([b.mask(r.mask) for r, b in zip(usable, ref_boxes, strict=True)])
        weights = torch.tensor([KIND_WEIGHTS[ref.kind] for ref in usable])
        seed = next((ref.view for ref in refs if ref.kind == "seed"), None)

        with torch.inference_mode(), self._autocast():
            if self.schedule == "pair" or seed is None:
                target_image = box.image(target.image)
                pairs = np.stack(
                    [
                        np.stack([b.image(r.view.image), target_image])
                        for r, b in zip(usable, ref_boxes, strict=True)
                    ]
                )
                out = self.model.segment_pairs(
                    self._upload(pairs), torch.from_numpy(masks).to(self.device), box.content_hw
                )
            else:
                self._start_job(seed)
                seed_feat, target_feat = self._cached(seed, target)
                # The seed pair is the very pair the backbone saw; other references bring their own pass's
                # features of their frame.
                sources = [
                    seed_feat if ref.kind == "seed" else self._cached(seed, ref.view)[1] for ref in usable
                ]
                fmaps = torch.stack([torch.stack([src, target_feat]) for src in sources])
                points = torch.stack([self._source_points(r, m) for r, m in zip(usable, masks, strict=True)])
                out = self.model.segment_features(
                    fmaps, torch.from_numpy(masks).to(self.device), box.content_hw, points.to(self.device)
                )
        fused = fuse_logits(out.logits.float(), weights)
        score = presence_score(box.content(fused)[None])[0]
        mask = box.unmap_logits(fused) > 0
        return Prediction(mask=mask.cpu().numpy(), score=float(score))
