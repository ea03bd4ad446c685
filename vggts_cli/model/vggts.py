"""The whole VGGT-Segmentor: frozen VGGT backbone (aggregator + track head) and the Union Segmentation Head.

Checkpoints come in two forms:
- the official pair: VGGT's `model.pt` (a state dict with `aggregator.*`, `track_head.*` and the camera,
  depth and point heads, which VGGT-S does not use and we skip by name) and VGGT-S's `main_exp.pth`
  (a training checkpoint whose `'model'` entry is the head, keys without prefix);
- our own single `.safetensors` file: every key of `VGGTS` (`aggregator.*`, `track_head.*`, `head.*`)
  plus the `ModelConfig` as JSON in the file's metadata, so a file says which model it holds.
Every key is matched strictly; any failure is a one-line `VggtsError`.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from vggts_cli.errors import UsageError, VggtsError
from vggts_cli.fsutil import PartialOutput
from vggts_cli.model import hub
from vggts_cli.model.aggregator import Aggregator
from vggts_cli.model.checkpoints import VGGT_SKIPPED_PREFIXES, load_into, read_state_dict
from vggts_cli.model.configs import VGGT_S_1B, ModelConfig
from vggts_cli.model.track_head import TrackHead
from vggts_cli.model.tracker import TrackOutput
from vggts_cli.model.union_head import UnionHead
from vggts_cli.weights import DEFAULT_MODEL, shipped_model_path

FORMAT = "vggts-model"  # safetensors metadata "format" of our files
FORMAT_VERSION = "1"
OFFICIAL_MODEL = VGGT_S_1B.name  # the name that loads the official pair through the hub
# Official weights by hub name: VGGT's model.pt (backbone) and VGGT-S's main_exp.pth (head).
OFFICIAL_BACKBONE, OFFICIAL_HEAD = "vggt-1b", "vggt-s-head"
_CPU = torch.device("cpu")


@dataclass
class PairOutput:
    """The head on [source, target] pairs: logits (B, img, img) of the object in the target input and the
    presence (B,) in [0, 1]."""

    logits: torch.Tensor
    presence: torch.Tensor


class VGGTS(nn.Module):
    """VGGT-S: `aggregator` and `track_head` (VGGT's, frozen) and `head` (the Union Segmentation Head)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.aggregator = Aggregator(cfg.aggregator)
        self.track_head = TrackHead(cfg.dpt, cfg.tracker)
        self.head = UnionHead(cfg.head)

    def backbone(self) -> nn.Module:
        """The modules `model.pt` holds (keys `aggregator.*`, `track_head.*`), sharing our parameters."""
        return nn.ModuleDict({"aggregator": self.aggregator, "track_head": self.track_head})

    def features(self, images: torch.Tensor, patches: torch.Tensor | None = None) -> torch.Tensor:
        """images (B, S, 3, H, W) in [0, 1], H and W multiples of the patch size -> DPT feature maps
        (B, S, F, H/2, W/2). `patches` (B, S, P, C): the images' `embed` when the caller has it.

        The aggregator stops after the last layer the DPT reads (all of them for the real model).
        """
        tokens, patch_start_idx = self.aggregator(images, keep=self.cfg.dpt.layer_idx, patches=patches)
        return self.track_head.features(tokens, tuple(images.shape[-2:]), patch_start_idx)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The per-image patch tokens (N, P, C) of images (N, 3, H, W) in [0, 1]."""
        return self.aggregator.embed(images)

    def track(self, fmaps: torch.Tensor, queries: torch.Tensor, iters: int | None = None) -> TrackOutput:
        """Track queries (B, N, 2), (x, y) in input pixels of frame 0, through fmaps (B, S, F, h, w)."""
        return self.track_head.track(fmaps, queries, iters)

    def check_segmentable(self) -> None:
        """The head reads `head.embed_dim`-channel features of an img_size square input; raise if this
        config can't."""
        cfg = self.cfg
        if cfg.img_size != cfg.head.img_size or cfg.dpt.features != cfg.head.embed_dim:
            raise VggtsError(
                f"model {cfg.name!r} cannot segment: the head needs {cfg.head.embed_dim}-channel features "
                f"of a {cfg.head.img_size}px input, the backbone gives {cfg.dpt.features} at {cfg.img_size}px"
            )

    def segment_pairs(
        self,
        images: torch.Tensor,
        src_masks: torch.Tensor,
        target_hw: tuple[int, int] | torch.Tensor | None = None,
    ) -> PairOutput:
        """images (B, 2, 3, img, img) in [0, 1]: [source, target] pairs, each through the backbone as one
        window; src_masks (B, img, img) bool. See `segment_features`."""
        return self.segment_features(self.features(images).float(), src_masks, target_hw)

    def segment_features(
        self,
        fmaps: torch.Tensor,
        src_masks: torch.Tensor,
        target_hw: tuple[int, int] | torch.Tensor | None = None,
        src_points: torch.Tensor | None = None,
    ) -> PairOutput:
        """fmaps (B, 2, C, h, w): [source, target] backbone features; src_masks (B, img, img) bool.

        The source is frame 0 (the tracker's query frame). K-Means points of each source mask (or the given
        `src_points` (B, N, 2)) are tracked into the target (last iterate, clipped to the target's top-left
        `target_hw` = (h, w) region — one for all pairs, or (B, 2) per pair; default the whole input: the
        padding of a letterboxed frame is not image), then the head predicts the target's logits.
        """
        if src_points is None:
            src_points = self.head.source_points(src_masks)
        tracked = self.track(fmaps, src_points).coords[-1][:, 1].float()
        size = self.cfg.img_size
        hw = (size, size) if target_hw is None else target_hw
        limits = torch.as_tensor(hw, device=tracked.device).expand(len(tracked), 2)
        # (x, y) clipped to [0, w - 1] × [0, h - 1] of each pair's target.
        tar_points = torch.minimum(tracked.clamp(min=0), (limits.flip(-1)[:, None, :] - 1).to(tracked))
        out = self.head.segment(fmaps[:, 0], fmaps[:, 1], src_masks, tar_points, src_points)
        return PairOutput(logits=out.logits.float(), presence=out.presence.float())


def resolve_device(device: str) -> torch.device:
    """ "auto" -> cuda when available, else cpu; "cuda" without CUDA is a UsageError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UsageError(f"--device {device!r} is not one of auto, cpu, cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device} was asked for, but torch sees no CUDA device")
    return torch.device(device)


# -- configs as JSON ---------------------------------------------------------------------------------


def config_to_json(cfg: ModelConfig) -> str:
    """A ModelConfig as compact JSON (nested dataclasses become objects, tuples lists)."""
    return json.dumps(dataclasses.asdict(cfg), sort_keys=True)


def config_from_json(text: str) -> ModelConfig:
    """The inverse of `config_to_json`. Fields missing from the JSON take their defaults (files written
    before a field was added); an unknown field raises ValueError (a file from a newer vggts)."""
    return _dataclass_from_dict(ModelConfig, json.loads(text))


def _dataclass_from_dict(cls: type, data: Any) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field {unknown[0]!r}")
    values = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            value = _dataclass_from_dict(hint, value)
        elif isinstance(value, list):
            value = tuple(value)
        values[name] = value
    return cls(**values)


# -- checkpoints -------------------------------------------------------------------------------------


def _load_checked(module: nn.Module, state: dict[str, torch.Tensor], path: Path, **kwargs: Any) -> None:
    """`load_into`, with the file named in its error."""
    try:
        load_into(module, state, **kwargs)
    except VggtsError as err:
        raise VggtsError(f"{path}: {err}") from None


def load_backbone(model: VGGTS, path: str | PathLike[str]) -> None:
    """Load VGGT's `model.pt` layout (or any file of `aggregator.*` + `track_head.*` keys) strictly into
    `model`'s backbone; the camera, depth and point heads are skipped by name."""
    path = Path(path)
    _load_checked(model.backbone(), read_state_dict(path), path, skip_prefixes=VGGT_SKIPPED_PREFIXES)


def load_head(model: VGGTS, path: str | PathLike[str]) -> None:
    """Load VGGT-S's `main_exp.pth` (its `'model'` entry; keys without prefix) strictly into `model.head`."""
    path = Path(path)
    _load_checked(model.head, read_state_dict(path), path)


def _build(cfg: ModelConfig, device: torch.device) -> VGGTS:
    """VGGTS(cfg) initialised directly on `device` (no CPU copy of a 4 GB model on the way to a GPU)."""
    with device:
        return VGGTS(cfg)


def load_official(
    model_pt: str | PathLike[str],
    main_exp: str | PathLike[str],
    cfg: ModelConfig = VGGT_S_1B,
    device: torch.device = _CPU,
) -> VGGTS:
    """A `VGGTS(cfg)` on `device`, eval mode, frozen, from the official pair `model.pt` + `main_exp.pth`."""
    model = _build(cfg, device)
    load_backbone(model, model_pt)
    load_head(model, main_exp)
    return model.eval().requires_grad_(False)


def save_model(model: VGGTS, path: str | PathLike[str]) -> Path:
    """Write `model` as one self-describing safetensors file (atomically); returns the path."""
    path = Path(path)
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    metadata = {"format": FORMAT, "version": FORMAT_VERSION, "config": config_to_json(model.cfg)}
    try:
        with PartialOutput(path) as partial:
            save_file(state, partial, metadata=metadata)
    except OSError as err:
        raise VggtsError(f"{path}: cannot write the model ({err.strerror or err})") from None
    return path


def read_config(path: str | PathLike[str]) -> ModelConfig:
    """The ModelConfig stored in one of our safetensors files."""
    path = Path(path)
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
    except OSError as err:
        raise VggtsError(f"{path}: cannot read the file: {err.strerror or err}") from None
    except Exception:  # safetensors' own error type for a file that is not safetensors
        raise VggtsError(
            f"{path}: not a vggts model file (a .safetensors file written by vggts); the official "
            f"model.pt + main_exp.pth pair loads as {OFFICIAL_MODEL!r}"
        ) from None
    if metadata.get("format") != FORMAT or "config" not in metadata:
        raise VggtsError(
            f"{path}: a safetensors file, but not a vggts model (no model config in its metadata)"
        )
    if metadata.get("version") != FORMAT_VERSION:
        raise VggtsError(
            f"{path}: vggts model format version {metadata.get('version')!r}; this vggts reads "
            f"version {FORMAT_VERSION}"
        )
    try:
        return config_from_json(metadata["config"])
    except (ValueError, TypeError) as err:
        raise VggtsError(f"{path}: bad model config in its metadata ({err})") from None


def load_file_model(path: str | PathLike[str], device: torch.device = _CPU) -> VGGTS:
    """A VGGTS on `device`, eval mode, frozen, from one of our safetensors files (built from its config)."""
    path = Path(path)
    cfg = read_config(path)
    model = _build(cfg, device)
    _load_checked(model, read_state_dict(path), path)
    return model.eval().requires_grad_(False)


def load_model(name_or_path: str | PathLike[str], device: str | torch.device = "cpu") -> VGGTS:
    """`vggt-s-1b` -> the official pair through the hub (Hugging Face cache, downloaded when missing);
    `vggt-s-lite` -> the model shipped in the package; a file path -> our safetensors format. Returns the
    model in eval mode on `device`, frozen."""
    device = resolve_device(device) if isinstance(device, str) else device
    name = str(name_or_path)
    if name == OFFICIAL_MODEL and not Path(name).is_file():
        return load_official(hub.resolve(OFFICIAL_BACKBONE), hub.resolve(OFFICIAL_HEAD), device=device)
    if name == DEFAULT_MODEL and not Path(name).is_file():
        shipped = shipped_model_path()
        if not shipped.is_file():
            raise VggtsError(f"the shipped model {DEFAULT_MODEL!r} is missing from this install ({shipped})")
        return load_file_model(shipped, device)
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise VggtsError(
            f"{path}: {'is a directory' if path.is_dir() else 'no such file'}; --model takes a vggts "
            f"model file (.safetensors), {DEFAULT_MODEL!r} (shipped) or {OFFICIAL_MODEL!r}"
        )
    return load_file_model(path, device)
