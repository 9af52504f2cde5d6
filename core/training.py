"""The one training loop of every torch method: optimiser, LR schedule, early stopping
on a synthetic validation accuracy, checkpoints that survive a crash, hooks for logging.

A method supplies a *step*: ``step(rows, step) -> {"loss": tensor, other: tensor|float}``
for a batch of training-row indices. Randomness is re-seeded from ``(seed, step)`` before
every step (dropout, noise, reparameterisation, triplet sampling) and the batch order
from ``(seed, epoch)``, so a run resumed from a checkpoint mid-epoch continues exactly
as the uninterrupted run would have (a test kills a run with SIGKILL and compares).
"""

from __future__ import annotations

import copy
import logging
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

log = logging.getLogger("cad2real.training")


def pick_device(preference: str = "auto") -> torch.device:
    """CUDA when asked or (``auto``) when present, else the CPU."""
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("trainer.device is cuda but torch sees no CUDA device")
    return torch.device("cuda" if preference != "cpu" and torch.cuda.is_available() else "cpu")


def step_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step) % (2**63 - 1)


class Step(Protocol):
    """One optimisation step of a method; its ``state_dict`` (e.g. the previous batch's
    variance ratio of eq. 9) is saved in checkpoints."""

    def __call__(self, rows: np.ndarray, step: int) -> dict[str, Any]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Hook(Protocol):
    def on_step(self, step: int, logs: dict[str, float]) -> None: ...

    def on_epoch(self, epoch: int, logs: dict[str, float]) -> None: ...


@dataclass(frozen=True)
class LoopSettings:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    optimizer: str = "adam"
    lr_schedule: str = "cosine"
    patience: int = 0  # epochs without a better validation score before stopping (0: never)
    checkpoint_every: int = 25
    seed: int = 0


@dataclass
class FitResult:
    steps: int
    epochs_run: int
    best_epoch: int
    best_score: float | None
    history: list[dict[str, float]] = field(default_factory=list)  # one row per step
    epochs: list[dict[str, float]] = field(default_factory=list)  # one row per epoch
    resumed_from: int | None = None  # the step a checkpoint resumed from
    stopped_early: bool = False


def lr_factor(schedule: str, step: int, total: int) -> float:
    """Multiplier of the base learning rate at ``step`` of ``total``."""
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))
    if schedule == "step":
        return 0.1 ** (3 * step // max(total, 1))  # /10 at 1/3 and 2/3 of training
    return 1.0


def make_optimizer(groups: Iterable[dict[str, Any]], s: LoopSettings) -> torch.optim.Optimizer:
    if s.optimizer == "sgd":
        return torch.optim.SGD(list(groups), lr=s.lr, momentum=0.9, weight_decay=s.weight_decay)
    return torch.optim.AdamW(list(groups), lr=s.lr, weight_decay=s.weight_decay)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomically (a crash while saving leaves the previous checkpoint)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it belongs to this run (same fingerprint)."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a torn or foreign file: start over, say why
        log.warning("checkpoint %s unreadable (%s); training from the start", path, exc)
        return None
    if state.get("fingerprint") != fingerprint:
        log.warning("checkpoint %s is from other data or params; training from the start", path)
        return None
    return state


def fit(module: torch.nn.Module, train_rows: np.ndarray, step: Step, validate: Callable[[], float] | None,
        settings: LoopSettings, *, checkpoint: Path | None = None, fingerprint: str = "",
        param_groups: Iterable[dict[str, Any]] | None = None, hooks: Iterable[Hook] = (),
        desc: str = "train") -> FitResult:
    """Train ``module`` with ``step`` over ``train_rows`` for ``settings.epochs`` epochs;
    keep the weights of the epoch with the best ``validate()`` score (higher is better).
    With ``checkpoint``, state is saved every ``checkpoint_every`` steps and at each epoch
    end, a matching checkpoint is resumed, and the file is removed when training ends."""
    s = settings
    hooks = list(hooks)
    train_rows = np.asarray(train_rows)
    per_epoch = max(1, len(train_rows) // s.batch_size)
    total = s.epochs * per_epoch
    groups = list(param_groups) if param_groups is not None else [{"params": list(module.parameters())}]
    for g in groups:
        g.setdefault("lr_scale", 1.0)
        g["lr"] = s.lr * g["lr_scale"]
    optimizer = make_optimizer(groups, s)
    torch.manual_seed(s.seed)

    pos = {"epoch": 0, "batch": 0, "step": 0}
    best: dict[str, Any] = {"score": None, "epoch": -1, "state": None, "bad": 0}
    result = FitResult(steps=0, epochs_run=0, best_epoch=-1, best_score=None)
    state = load_checkpoint(checkpoint, fingerprint) if checkpoint is not None else None
    if state is not None:
        module.load_state_dict(state["module"])
        optimizer.load_state_dict(state["optimizer"])
        step.load_state_dict(state["step_state"])
        pos, best = state["pos"], state["best"]
        result.history, result.epochs = state["history"], state["epochs"]
        result.resumed_from = pos["step"]
        log.info("%s: resuming from checkpoint %s at step %d (epoch %d, batch %d)", desc, checkpoint, pos["step"],
                 pos["epoch"] + 1, pos["batch"])

    def snapshot() -> dict[str, Any]:
        return {"fingerprint": fingerprint, "module": module.state_dict(), "optimizer": optimizer.state_dict(),
                "step_state": step.state_dict(), "pos": dict(pos), "best": best, "history": result.history,
                "epochs": result.epochs}

    bar = tqdm(total=total, initial=pos["step"], desc=desc, unit="step", mininterval=2.0)
    stopped = False
    for epoch in range(pos["epoch"], s.epochs):
        order = np.random.default_rng([s.seed, epoch]).permutation(train_rows)
        module.train()
        for b in range(pos["batch"], per_epoch):
            n = pos["step"]
            for g in optimizer.param_groups:
                g["lr"] = s.lr * g["lr_scale"] * lr_factor(s.lr_schedule, n, total)
            torch.manual_seed(step_seed(s.seed, n))
            out = step(order[b * s.batch_size : (b + 1) * s.batch_size], n)
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            optimizer.step()
            logs = {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in out.items()}
            logs["lr"] = optimizer.param_groups[0]["lr"]
            if not math.isfinite(logs["loss"]):
                raise FloatingPointError(f"{desc}: loss is {logs['loss']} at step {n} (epoch {epoch + 1}); "
                                         "lower trainer.lr or check the data")
            pos.update(step=n + 1, batch=b + 1)
            result.history.append({"step": n + 1, "epoch": epoch + 1, **logs})
            for hook in hooks:
                hook.on_step(n + 1, logs)
            bar.update(1)
            bar.set_postfix(loss=f"{logs['loss']:.3f}", refresh=False)
            if checkpoint is not None and (n + 1) % s.checkpoint_every == 0:
                save_checkpoint(checkpoint, snapshot())
        score = validate() if validate is not None else None
        epoch_logs = {"epoch": epoch + 1, "step": pos["step"],
                      "train_loss": float(np.mean([h["loss"] for h in result.history[-per_epoch:]]))}
        if score is not None:
            epoch_logs["val_accuracy"] = score
        if score is None or best["score"] is None or score > best["score"]:
            best = {"score": score, "epoch": epoch + 1, "state": copy.deepcopy(module.state_dict()), "bad": 0}
        else:
            best["bad"] += 1
        result.epochs.append(epoch_logs)
        for hook in hooks:
            hook.on_epoch(epoch + 1, epoch_logs)
        log.info("%s: epoch %d/%d, train loss %.4f%s", desc, epoch + 1, s.epochs, epoch_logs["train_loss"],
                 f", synthetic val accuracy {score:.4f}" if score is not None else "")
        pos.update(epoch=epoch + 1, batch=0)
        if checkpoint is not None:
            save_checkpoint(checkpoint, snapshot())
        if s.patience and best["bad"] >= s.patience and epoch + 1 < s.epochs:
            log.info("%s: early stop after epoch %d (no better val accuracy for %d epochs)", desc, epoch + 1,
                     s.patience)
            stopped = True
            break
    bar.close()
    if best["state"] is not None:
        module.load_state_dict(best["state"])
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    result.steps, result.epochs_run = pos["step"], pos["epoch"]
    result.best_epoch, result.best_score, result.stopped_early = best["epoch"], best["score"], stopped
    return result
