"""`vggts train`: the loop learns, checkpoints, resumes bit-identically, and refuses bad runs."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import torch

pytest.importorskip("skimage")

from vggts_cli.errors import UsageError  # noqa: E402
from vggts_cli.model.configs import VGGT_S_TINY  # noqa: E402
from vggts_cli.model.io import load_file_model, save_model  # noqa: E402
from vggts_cli.model.vggts import VGGTS  # noqa: E402
from vggts_cli.train.loop import CHECKPOINT, LOG_FILE, MODEL_FILE, TrainConfig, Trainer, learning_rate  # noqa: E402

CPU = torch.device("cpu")
SMALL = TrainConfig(steps=4, batch_size=2, warmup=2, mix={"adaptive": 1.0, "non_adaptive": 1.0, "rig": 1.0})


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    straight = Trainer(SMALL, tmp_path / "a", CPU)
    before = _weights(straight.model)
    assert straight.run(checkpoint_every=100) == 4
    after = _weights(straight.model)
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it trained

    first = Trainer(SMALL, tmp_path / "b", CPU)
    assert first.run(checkpoint_every=100, max_steps=2) == 2  # "killed" after two steps, checkpoint written
    with (tmp_path / "b" / LOG_FILE).open("a") as log:  # a step logged after the checkpoint, then lost
        log.write(json.dumps({"step": 3, "total": 9.0, "iou": 0.0}) + "\n")
    resumed = Trainer(SMALL, tmp_path / "b", CPU, resume=True)
    assert resumed.step == 2
    assert resumed.run(checkpoint_every=100) == 4
    for key, value in _weights(resumed.model).items():
        assert torch.equal(value, after[key]), key

    log = [json.loads(line) for line in (tmp_path / "b" / LOG_FILE).read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert all(0 < r["total"] < 9 and 0 <= r["iou"] <= 1 for r in log)
    shipped = load_file_model(tmp_path / "b" / MODEL_FILE)
    for key, value in shipped.state_dict().items():
        assert torch.equal(value, after[key]), key


def test_refuses_to_overwrite_or_resume_mismatched_runs(tmp_path):
    Trainer(SMALL, tmp_path, CPU).run(checkpoint_every=100, max_steps=1)
    with pytest.raises(UsageError, match="--resume"):
        Trainer(SMALL, tmp_path, CPU)
    with pytest.raises(UsageError, match="other training settings"):
        Trainer(TrainConfig(steps=8, batch_size=2), tmp_path, CPU, resume=True)
    with pytest.raises(UsageError, match="does not exist"):
        Trainer(SMALL, tmp_path / "none", CPU, resume=True)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="not a vggts training checkpoint"):
        Trainer(SMALL, tmp_path / "junk", CPU, resume=True)


def test_fine_tuning_starts_from_a_model_file(tmp_path):
    first = Trainer(SMALL, tmp_path / "a", CPU)
    first.run(checkpoint_every=100, max_steps=1)
    tuned = Trainer(dataclasses.replace(SMALL, init=str(tmp_path / "a" / MODEL_FILE)), tmp_path / "b", CPU)
    for key, value in first.model.state_dict().items():
        assert torch.equal(tuned.model.state_dict()[key], value), key
    assert tuned.run(checkpoint_every=100, max_steps=1) == 1
    other = tmp_path / "tiny.safetensors"
    save_model(VGGTS(VGGT_S_TINY), other)
    with pytest.raises(UsageError, match="not 'vggt-s-lite'"):
        Trainer(dataclasses.replace(SMALL, init=str(other)), tmp_path / "c", CPU)


def test_learning_rate_warms_up_then_decays():
    cfg = TrainConfig(steps=100, warmup=10, lr=1e-3)
    rates = [learning_rate(cfg, s) for s in range(100)]
    assert rates[0] < rates[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:], strict=False))
    assert rates[-1] == pytest.approx(0.05e-3, rel=0.05)


def test_cli_bad_mix_is_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "vggts_cli", "train", "--out", str(tmp_path), "--mix", "photos=1"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "--mix" in proc.stderr
    assert not list(tmp_path.iterdir())
