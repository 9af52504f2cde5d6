"""The training loop: learning, early stopping on the best epoch, and a run killed with
SIGKILL mid-epoch that resumes from its checkpoint to exactly the uninterrupted result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from core.training import LoopSettings, fit, lr_factor, pick_device

ROOT = Path(__file__).resolve().parents[2]

# A real subprocess: a small MLP on a fixed toy problem, trained with the real loop; it
# writes the final weights to argv[2]. A sleep per step leaves time to kill it.
SCRIPT = """
import sys, time
from pathlib import Path
import numpy as np, torch
from core.training import LoopSettings, fit

x = torch.from_numpy(np.random.default_rng(0).normal(size=(96, 8)).astype(np.float32))
y = (x[:, 0] + x[:, 1] > 0).long()
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(16, 2))

class Step:
    def __init__(self):
        self.calls = 0
    def state_dict(self):
        return {"calls": self.calls}
    def load_state_dict(self, state):
        self.calls = state["calls"]
    def __call__(self, rows, step):
        time.sleep(float(sys.argv[3]))
        self.calls += 1
        noise = torch.randn(len(rows), 8) * 0.1  # re-seeded per step: identical after a resume
        return {"loss": torch.nn.functional.cross_entropy(net(x[rows] + noise), y[rows])}

settings = LoopSettings(epochs=3, batch_size=8, lr=0.01, checkpoint_every=1, seed=3)
result = fit(net, np.arange(96), Step(), None, settings, checkpoint=Path(sys.argv[1]), fingerprint="toy")
torch.save({"state": net.state_dict(), "resumed_from": result.resumed_from, "steps": result.steps}, sys.argv[2])
"""


def run_script(tmp: Path, out: str, sleep: float) -> subprocess.Popen:
    script = tmp / "train_toy.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(script), str(tmp / "ckpt.pt"), str(tmp / out), str(sleep)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_a_killed_run_resumes_mid_epoch_to_the_same_weights(tmp_path: Path):
    reference = tmp_path / "ref"
    reference.mkdir()
    assert run_script(reference, "final.pt", 0.0).wait(timeout=120) == 0

    proc = run_script(tmp_path, "final.pt", 0.05)
    ckpt = tmp_path / "ckpt.pt"
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until a checkpoint in the middle of epoch 1 exists
        if ckpt.is_file():
            state = torch.load(ckpt, weights_only=True)
            if 3 <= state["pos"]["step"] and state["pos"]["batch"] > 0:
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (tmp_path / "final.pt").exists() and ckpt.is_file()

    resumed = run_script(tmp_path, "final.pt", 0.0)
    output = resumed.communicate(timeout=120)[0].decode()
    assert resumed.returncode == 0, output
    got = torch.load(tmp_path / "final.pt", weights_only=True)
    want = torch.load(reference / "final.pt", weights_only=True)
    assert got["resumed_from"] is not None and got["resumed_from"] >= 3 and want["resumed_from"] is None
    assert got["steps"] == want["steps"] == 36
    for key, value in want["state"].items():
        assert torch.equal(got["state"][key], value), key
    assert not ckpt.exists()  # removed when training ends


class Linear:
    """A step on a separable toy problem; validation = accuracy on held-out rows."""

    def __init__(self, net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
        self.net, self.x, self.y = net, x, y

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def __call__(self, rows: np.ndarray, step: int) -> dict:
        return {"loss": torch.nn.functional.cross_entropy(self.net(self.x[rows]), self.y[rows])}


def toy(n: int = 200):
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(n, 4)).astype(np.float32))
    return x, (x[:, 0] > 0).long()


def test_fit_learns_keeps_the_best_epoch_and_stops_early(tmp_path: Path):
    x, y = toy()
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 2)
    scores = iter([0.5, 0.9, 0.6, 0.7, 0.8, 0.95])
    snapshots = []

    def validate() -> float:
        snapshots.append({k: v.clone() for k, v in net.state_dict().items()})
        return next(scores)

    result = fit(net, np.arange(150), Linear(net, x, y), validate,
                 LoopSettings(epochs=6, batch_size=16, lr=0.05, patience=2, seed=0),
                 checkpoint=tmp_path / "c.pt", fingerprint="a")
    assert result.stopped_early and result.epochs_run == 4 and result.best_epoch == 2 and result.best_score == 0.9
    assert all(torch.equal(net.state_dict()[k], snapshots[1][k]) for k in snapshots[1])  # epoch 2's weights
    assert result.history[0]["loss"] > result.history[-1]["loss"]
    assert [e["epoch"] for e in result.epochs] == [1, 2, 3, 4] and not (tmp_path / "c.pt").exists()
    acc = (net(x[150:]).argmax(1) == y[150:]).float().mean()
    assert acc > 0.8


def test_a_checkpoint_of_other_params_is_not_resumed(tmp_path: Path, caplog):
    x, y = toy()
    net = torch.nn.Linear(4, 2)
    ckpt = tmp_path / "c.pt"
    torch.save({"fingerprint": "other"}, ckpt)
    with caplog.at_level("WARNING"):
        result = fit(net, np.arange(64), Linear(net, x, y), None, LoopSettings(epochs=1, batch_size=16, lr=0.01),
                     checkpoint=ckpt, fingerprint="mine")
    assert result.resumed_from is None and "from other data or params" in caplog.text


def test_a_diverging_loss_names_the_step():
    x, y = toy()
    net = torch.nn.Linear(4, 2)

    class Bad(Linear):
        def __call__(self, rows, step):
            return {"loss": super().__call__(rows, step)["loss"] * float("nan")}

    with pytest.raises(FloatingPointError, match="loss is nan at step 0"):
        fit(net, np.arange(64), Bad(net, x, y), None, LoopSettings(epochs=1, batch_size=16, lr=0.01))


def test_schedules_and_device():
    assert lr_factor("cosine", 0, 100) == 1.0 and lr_factor("cosine", 100, 100) == pytest.approx(0.0)
    assert lr_factor("step", 50, 100) == pytest.approx(0.1) and lr_factor("constant", 77, 100) == 1.0
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
