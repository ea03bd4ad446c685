"""The training loop of `vggts train`: a whole VGGT-S of a small config, trained end to end.

One step = one batch of [source, target] pairs (`train.samples.SampleStream`, deterministic in the step):
backbone features of both views, the tracker on the source mask's K-Means points (supervised by their
true target positions where those are in view), the head's refinement passes prompted by the tracked
points, or by synthesised points for the non-adaptive pairs the tracker is not expected to follow
(the paper's strategy), focal + dice on every pass.

A checkpoint (`checkpoint.pt`: weights, optimiser, step) and the model file (`model.safetensors`) are
written atomically every `checkpoint_every` steps and at the end; `resume` continues from the checkpoint
with the very batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from vggts_cli.errors import UsageError, VggtsError
from vggts_cli.fsutil import PartialOutput
from vggts_cli.model.configs import CONFIGS
from vggts_cli.model.io import from_json, load_file_model, save_model, to_json
from vggts_cli.model.losses import mask_loss
from vggts_cli.model.stem import load_imagenet_weights
from vggts_cli.model.vggts import VGGTS
from vggts_cli.train import defaults
from vggts_cli.train.samples import SampleStream

CHECKPOINT = "checkpoint.pt"
MODEL_FILE = "model.safetensors"
LOG_FILE = "train.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a run computes (stored in the checkpoint; a resume must match)."""

    model: str = defaults.MODEL
    steps: int = defaults.STEPS
    batch_size: int = defaults.BATCH_SIZE
    lr: float = defaults.LR
    weight_decay: float = 0.05
    warmup: int = 300
    clip: float = 1.0
    track_weight: float = 0.1  # tracking loss (coords / image side) next to the mask loss
    focal_alpha: float | None = defaults.FOCAL_ALPHA
    # Refinement trained as the paper does, whatever the model config runs at inference: every head pass
    # and every tracker iterate gets a loss, so each of them learns to stand on its own.
    passes: int = 2
    track_iters: int = 3
    # Share of pairs whose head is prompted with the true target points rather than the tracker's, from
    # `teacher_start` at step 0 down to `teacher_end` at `teacher_until` of the run: a from-scratch tracker
    # gives the head no signal at first, and at the end the head must work from tracked points.
    teacher_start: float = 0.9
    teacher_end: float = 0.2
    teacher_until: float = 0.6
    seed: int = defaults.SEED
    init: str | None = None  # a vggts model file of the same config to start from (fine-tuning)
    mix: dict[str, float] = field(default_factory=lambda: dict(defaults.MIX))

    def to_json(self) -> str:
        return to_json(self)


@dataclass
class StepLosses:
    """The parts of one step's loss (floats, for the log)."""

    total: float
    mask: float
    track: float
    iou: float  # mean IoU of the last pass against the target mask


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to 5 % of `lr` at the last step."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def teacher_share(cfg: TrainConfig, step: int) -> float:
    """The share of tracked-prompt pairs prompted with true points instead, at `step` (linear decay)."""
    if cfg.init is not None:  # fine-tuning: the tracker already gives the head a signal
        return cfg.teacher_end
    progress = min(1.0, step / max(1.0, cfg.teacher_until * cfg.steps))
    return cfg.teacher_start + (cfg.teacher_end - cfg.teacher_start) * progress


def track_loss(
    coords: list[torch.Tensor], truth: torch.Tensor, valid: torch.Tensor, side: int
) -> torch.Tensor:
    """Tracker loss: per iterate (B, 2, N, 2) the Huber distance of the target frame's points to the truth
    (B, N, 2) in units of the image side, over valid points (B, N), later iterates weighted more (0.8^k)."""
    if not valid.any():
        return coords[-1].sum() * 0
    total = coords[-1].new_zeros(())
    for k, iterate in enumerate(reversed(coords)):
        err = F.huber_loss(iterate[:, 1] / side, truth / side, reduction="none", delta=0.05).sum(-1)
        total = total + 0.8**k * err[valid].mean()
    return total


def forward_losses(
    model: VGGTS, batch: dict[str, torch.Tensor], cfg: TrainConfig, step: int = 0
) -> tuple[torch.Tensor, StepLosses]:
    """The loss of one batch (see the module docstring) at training step `step`."""
    side = model.cfg.img_size
    fmaps = model.features(batch["images"])
    tracks = model.track(fmaps, batch["src_points"], cfg.track_iters)
    t_loss = track_loss(tracks.coords, batch["tgt_points"], batch["points_valid"], side)
    tracked = tracks.coords[-1][:, 1].detach().clamp(0, side - 1)
    # Which pairs get true (synthesised) prompts: the non-adaptive ones always, the others by the teacher
    # share, drawn from a generator of (seed, step) so that a resumed run makes the same draws.
    draw = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    teacher = torch.rand(len(tracked), generator=draw) < teacher_share(cfg, step)
    synth = batch["synth_points"] | teacher.to(tracked.device)
    prompts = torch.where(synth[:, None, None], batch["prompt_points"], tracked)
    passes = model.head.run_passes(
        fmaps[:, 0], fmaps[:, 1], batch["src_mask"], prompts, batch["src_points"], cfg.passes
    )
    target = batch["tgt_mask"].float()
    m_loss = sum(mask_loss(logits, target, cfg.focal_alpha) for logits in passes) / len(passes)
    total = m_loss + cfg.track_weight * t_loss
    with torch.no_grad():
        pred = passes[-1] > 0
        truth = batch["tgt_mask"]
        inter = (pred & truth).flatten(1).sum(1).float()
        union = (pred | truth).flatten(1).sum(1).float()
        iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union)).mean()
    return total, StepLosses(
        float(total.detach()), float(m_loss.detach()), float(t_loss.detach()), float(iou)
    )


def _stored_config(text: object) -> TrainConfig | None:
    """The TrainConfig a checkpoint was made with (fields added since then take their defaults)."""
    try:
        return from_json(TrainConfig, str(text))
    except (TypeError, ValueError):
        return None


class Trainer:
    """A training run in `out`: model, optimiser and data stream; `run()` trains to `cfg.steps`."""

    def __init__(self, cfg: TrainConfig, out: Path, device: torch.device, resume: bool = False) -> None:
        if cfg.model not in CONFIGS:
            raise UsageError(f"--config {cfg.model!r} is not one of {', '.join(CONFIGS)}")
        self.cfg, self.out, self.device = cfg, out, device
        model_cfg = CONFIGS[cfg.model]
        torch.manual_seed(cfg.seed)
        self.model = VGGTS(model_cfg)
        self.model.check_segmentable()
        if cfg.init is not None:
            self._init_from(Path(cfg.init))
        elif model_cfg.aggregator.dino.stem != "patch":
            load_imagenet_weights(self.model.aggregator.patch_embed.patch_embed)
        self.model.to(device)
        # The ImageNet trunk learns 10x slower than the rest, which starts from scratch.
        pretrained = [p for n, p in self.model.named_parameters() if ".trunk." in n]
        ids = {id(p) for p in pretrained}
        fresh = [p for p in self.model.parameters() if id(p) not in ids]
        groups = [{"params": fresh, "lr_scale": 1.0}] + (
            [{"params": pretrained, "lr_scale": 0.1}] if pretrained else []
        )
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.stream = SampleStream(cfg.seed, model_cfg.img_size, model_cfg.head.n_points, cfg.mix)
        self.step = 0
        checkpoint = out / CHECKPOINT
        if checkpoint.exists() and not resume:
            raise UsageError(f"{out}: a training run is already there; pass --resume to continue it")
        if resume:
            self._load(checkpoint)

    def _init_from(self, path: Path) -> None:
        """Start from the weights of an earlier run's model file (same config)."""
        source = load_file_model(path)
        if source.cfg != self.model.cfg:
            raise UsageError(f"--init {path}: a {source.cfg.name!r} model, not {self.model.cfg.name!r}")
        self.model.load_state_dict(source.state_dict())

    def _load(self, path: Path) -> None:
        if not path.is_file():
            raise UsageError(f"--resume: {path} does not exist")
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as err:  # torch raises several types for a damaged or foreign file
            raise VggtsError(f"{path}: not a vggts training checkpoint ({type(err).__name__})") from None
        if _stored_config(state.get("config")) != self.cfg:
            raise UsageError(
                f"{path}: the checkpoint was made with other training settings; resume with the same options "
                f"(stored: {state.get('config')})"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        # Steps logged after the checkpoint were lost with the process; they will be run (and logged) again.
        log = self.out / LOG_FILE
        if log.exists():
            kept = [line for line in log.read_text().splitlines() if json.loads(line)["step"] <= self.step]
            log.write_text("".join(line + "\n" for line in kept))

    def save(self) -> None:
        """checkpoint.pt and model.safetensors, each written under a temporary name and renamed."""
        state = {
            "config": self.cfg.to_json(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
        }
        final = self.out / CHECKPOINT
        try:
            with PartialOutput(final) as partial:
                torch.save(state, partial)
        except OSError as err:
            raise VggtsError(f"{final}: cannot write the checkpoint ({err.strerror or err})") from None
        save_model(self.model, self.out / MODEL_FILE)

    def run(
        self,
        checkpoint_every: int = 200,
        max_seconds: float | None = None,
        max_steps: int | None = None,
        on_step: Callable[[int, StepLosses], None] | None = None,
    ) -> int:
        """Train from the current step to `cfg.steps`, stopping early (with a checkpoint) once `max_seconds`
        have passed or `max_steps` steps were taken in this call; returns the step reached. Appends one
        JSON line per step to train.jsonl."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.model.train()
        # The ImageNet stem keeps its BatchNorm statistics: a few pairs a step cannot estimate them.
        for module in self.model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()
        start, first = time.monotonic(), self.step
        with (self.out / LOG_FILE).open("a") as log:
            while self.step < self.cfg.steps:
                if max_seconds is not None and time.monotonic() - start >= max_seconds:
                    break
                if max_steps is not None and self.step - first >= max_steps:
                    break
                batch = {
                    k: v.to(self.device) for k, v in self.stream.batch(self.step, self.cfg.batch_size).items()
                }
                lr = learning_rate(self.cfg, self.step)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr * group["lr_scale"]
                loss, parts = forward_losses(self.model, batch, self.cfg, self.step)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip)
                self.optimizer.step()
                self.step += 1
                record = {"step": self.step, "lr": lr, "seconds": round(time.monotonic() - start, 2)}
                log.write(json.dumps(record | dataclasses.asdict(parts)) + "\n")
                log.flush()
                if on_step is not None:
                    on_step(self.step, parts)
                if self.step % checkpoint_every == 0:
                    self.save()
        self.save()
        self.model.eval()
        return self.step
