"""The learned engine: VGGT-Segmentor on [reference, target] pairs.

Per target frame, every reference with a non-empty mask makes one pair. The pair goes through the VGGT
backbone as a window of two frames, reference first (it is the tracker's query frame and gets VGGT's
first-frame camera token); K-Means points of the reference mask are tracked into the target and, with the
reference mask, prompt the Union Segmentation Head. The references' logits are fused by a weighted mean
and mapped back to the target frame. All pairs of one target run as one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from vggts_cli.engine.base import Engine, Prediction, Reference, ReferenceKind, View
from vggts_cli.errors import UsageError
from vggts_cli.model.crops import resize_logits
from vggts_cli.model.union_head import presence_score
from vggts_cli.model.vggts import OFFICIAL_MODEL, VGGTS, load_model, resolve_device

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


class LearnedEngine(Engine):
    """VGGT-Segmentor: bf16 autocast on CUDA, fp32 on the CPU; deterministic on the CPU."""

    name = "vggts"

    def __init__(self, model: VGGTS, device: str | torch.device = "cpu") -> None:
        model.check_segmentable()
        self.device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.size = model.cfg.img_size

    @classmethod
    def load(cls, model: str | None, device: str) -> LearnedEngine:
        """The engine for `--model` (a vggts checkpoint file or `vggt-s-1b`) on `--device` (auto|cpu|cuda)."""
        if model is None:
            raise UsageError(f"--engine vggts needs --model (a checkpoint file or {OFFICIAL_MODEL})")
        target = resolve_device(device)
        return cls(load_model(model, target), target)

    def segment(self, target: View, refs: Sequence[Reference]) -> Prediction:
        """Fuse the predictions of every usable reference (non-empty mask); none usable -> empty, score 0."""
        frame_hw = target.image.shape[:2]
        usable = [ref for ref in refs if ref.mask.any()]
        if not usable:
            return Prediction(mask=np.zeros(frame_hw, dtype=bool), score=0.0)
        for ref in usable:
            if ref.mask.shape != ref.view.image.shape[:2]:
                raise ValueError(
                    f"reference mask {ref.mask.shape} does not match its frame {ref.view.image.shape[:2]}"
                )

        box = Letterbox.fit(frame_hw, self.size)
        target_image = box.image(target.image)
        ref_boxes = [Letterbox.fit(ref.view.image.shape[:2], self.size) for ref in usable]
        pairs = np.stack(
            [np.stack([b.image(r.view.image), target_image]) for r, b in zip(usable, ref_boxes, strict=True)]
        )
        masks = np.stack([b.mask(r.mask) for r, b in zip(usable, ref_boxes, strict=True)])
        weights = torch.tensor([KIND_WEIGHTS[ref.kind] for ref in usable])

        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"),
        ):
            out = self.model.segment_pairs(
                to_tensor(pairs).to(self.device), torch.from_numpy(masks).to(self.device), box.content_hw
            )
        fused = fuse_logits(out.logits.float(), weights)
        score = presence_score(box.content(fused)[None])[0]
        mask = box.unmap_logits(fused) > 0
        return Prediction(mask=mask.cpu().numpy(), score=float(score))
