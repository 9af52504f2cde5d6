"""train_viewpoint stage: one viewpoint method (seed 004 §5.3-5.4) on the boxes of the
viewpoint_features stage; ``python -m stages.train_viewpoint <method>``.

``detector`` (stage train_viewpoint_detector) is the independent detector: Nc + 1 classes
(background last), trained on objects and background windows. Pose-only methods
(reg2d, reg3d, classif, geom) train on object boxes alone and carry that detector's
weights in their folder (Table 5.1: one fixed detector for every pose method). Joint
methods train detection and pose together (eq. 5.6-5.8). Detection batches hold
``positive_fraction`` objects (the seed's 25%), the rest background windows; an epoch is
one pass over the objects. SGD with momentum and weight decay, lr x 0.1 every
``lr_step_epochs`` (the seed's schedule); deterministic for a given seed.

Whole models (``val_models`` of each class) are held out of training: their composites
give the SYNTHETIC validation figures of the metrics (azimuth/viewpoint accuracy, detector
accuracy), which separate model generalisation from the domain gap that the evaluate
stage measures on the proxy-real set. ``*_real`` methods also train on the real photos
of ``viewpoint.real_train``.

Outputs: ``paths.viewpoint``/<method> (``viewpoint`` predictor: predictor.json +
weights.npz with the backbone cut, the detector and the pose network),
``paths.metrics``/train_viewpoint/<method>.json, ``paths.plots``/train_viewpoint/<method>/
(history.csv, loss curves).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from core import metrics, plots
from core.features import FeatureExtractor
from core.io import stable_hash, write_metrics
from core.params import Params
from core.viewpoint import (ANGLES, DETECTOR, Config, ViewpointModel, ViewpointNet, angle_targets, infer, load,
                            loss, parse_method)
from stages._cli import stage_main
from stages.viewpoint_features import FEATURES, INFO, ROWS, feature_params

log = logging.getLogger("cad2real.train_viewpoint")


class Boxes:
    """The features and rows of the viewpoint_features stage, split by whole models."""

    def __init__(self, params: Params):
        folder = Path(params.paths.viewpoint_features)
        for name in (FEATURES, ROWS, INFO):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder / name}: not found (run the viewpoint_features stage)")
        self.info = json.loads((folder / INFO).read_text())
        self.x = torch.from_numpy(np.load(folder / FEATURES, allow_pickle=False))
        self.rows = pd.read_parquet(folder / ROWS)
        if len(self.rows) != len(self.x):
            raise ValueError(f"{folder / ROWS}: {len(self.rows)} rows for {len(self.x)} features; re-run the stage")
        vp = params.viewpoint
        if self.info["layer"] != vp.layer or self.info["grid"] != vp.grid:
            raise ValueError(f"{folder / INFO}: features of {self.info['layer']}/grid {self.info['grid']}, params "
                             f"ask for {vp.layer}/grid {vp.grid}; re-run the viewpoint_features stage")
        obj = self.rows["category"] != ""
        self.categories = tuple(sorted(self.rows.loc[obj & (self.rows["source"] != "real"), "category"].unique()))
        self.cls = torch.tensor([self.categories.index(c) if c in self.categories else -1
                                 for c in self.rows["category"]])
        models = self.rows.loc[self.rows["source"] == "composite", ["category", "model_id"]].drop_duplicates()
        val = set()
        for _, group in models.groupby("category"):
            ids = sorted(group["model_id"], key=lambda m: stable_hash(params.seed, "viewpoint_val", m))
            val |= set(ids[: int(round(vp.val_models * len(ids)))] if len(ids) > 1 else [])
        self.is_val = self.rows["model_id"].isin(val).to_numpy()
        self.angles = {a: torch.tensor(self.rows[a].to_numpy(np.float64)) for a in ANGLES}
        self.val_models = len(val)

    def train_index(self, real: bool, objects_only: bool) -> tuple[np.ndarray, np.ndarray]:
        """Row indices of the training objects and background windows."""
        src = self.rows["source"].to_numpy()
        ok = ~self.is_val & ((src != "real") | real)
        obj = ok & (self.cls.numpy() >= 0)
        bg = ok & (self.rows["category"] == "").to_numpy()  # a real object of a class without renders is neither
        return np.nonzero(obj)[0], np.zeros(0, np.int64) if objects_only else np.nonzero(bg)[0]

    def val_index(self) -> tuple[np.ndarray, np.ndarray]:
        """Validation objects (unjittered, unflipped composites of held-out models) and background."""
        r = self.rows
        obj = self.is_val & (r["source"] == "composite").to_numpy() & ~r["jittered"].to_numpy() & ~r["flipped"].to_numpy()
        return np.nonzero(obj)[0], np.nonzero(self.is_val & (r["source"] == "part").to_numpy())[0]


def channel_scale(x: torch.Tensor, channels: int, grid: int) -> torch.Tensor:
    """1 / (root mean square of each channel) over the training boxes: unit-scale inputs."""
    sample = x[:: max(1, len(x) // 4000)].float().view(-1, channels, grid * grid)
    return 1.0 / sample.pow(2).mean(dim=(0, 2)).sqrt().clamp(min=1e-6)


def batches(obj: np.ndarray, bg: np.ndarray, size: int, fraction: float, rng: np.random.Generator):
    """One epoch: every object once, each batch topped up with background windows to
    ``1 - fraction`` (no background: object batches of ``size``)."""
    per = max(1, round(size * fraction)) if len(bg) else size
    order = rng.permutation(obj)
    for i in range(0, len(order), per):
        chunk = order[i : i + per]
        if len(bg):
            chunk = np.concatenate([chunk, rng.choice(bg, size=round(len(chunk) * (1 - fraction) / fraction))])
        yield chunk


def train_net(cfg: Config, boxes: Boxes, params: Params, method_real: bool, seed_key: str
              ) -> tuple[ViewpointNet, pd.DataFrame]:
    vp = params.viewpoint
    torch.manual_seed(int(stable_hash(params.seed, "train_viewpoint", seed_key)[:8], 16))
    rng = np.random.default_rng(int(stable_hash(params.seed, "train_viewpoint_batches", seed_key)[:8], 16))
    net = ViewpointNet(cfg)
    m = cfg.m
    obj, bg = boxes.train_index(method_real, objects_only=not (m.joint or m.representation is None))
    if not len(obj):
        raise ValueError(f"{params.paths.viewpoint_features}: no training objects")
    net.scale.copy_(channel_scale(boxes.x[obj], cfg.channels, cfg.grid))
    targets = {a: angle_targets(boxes.angles[a].nan_to_num(0.0), cfg) for a in ANGLES} \
        if m.representation is not None else {}
    if m.joint and m.representation == "classif":
        targets["azimuth"] = torch.from_numpy(np.where(boxes.cls.numpy() >= 0, targets["azimuth"].numpy(), -1))
    params_ = [p for p in net.parameters() if p.requires_grad]
    opt = (torch.optim.SGD(params_, lr=vp.lr, momentum=vp.momentum, weight_decay=vp.weight_decay)
           if vp.optimizer == "sgd" else torch.optim.Adam(params_, lr=vp.lr, weight_decay=vp.weight_decay))
    sched = torch.optim.lr_scheduler.StepLR(opt, vp.lr_step_epochs, gamma=0.1)
    history = []
    for epoch in tqdm(range(1, vp.epochs + 1), desc=f"train_viewpoint {cfg.method}", unit="epoch", mininterval=2.0):
        net.train()
        sums: dict[str, float] = {}
        n = 0
        for chunk in batches(obj, bg, vp.batch_size, vp.positive_fraction, rng):
            idx = torch.from_numpy(chunk)
            total, parts = loss(net, boxes.x[idx].float(), boxes.cls[idx], {a: t[idx] for a, t in targets.items()},
                                lam=vp.lam)
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            n += 1
        sched.step()
        history.append({"step": epoch, "lr": opt.param_groups[0]["lr"], **{f"loss_{k}": v / n for k, v in sums.items()},
                        **validate(net, boxes)})
    return net.eval(), pd.DataFrame(history)


def validate(net: ViewpointNet, boxes: Boxes) -> dict[str, float]:
    """Synthetic validation figures on the held-out models (empty when none are held out)."""
    obj, part = boxes.val_index()
    if not len(obj):
        return {}
    x = boxes.x[obj].float()
    proba, views = infer(net, x)
    cls = boxes.cls[obj].numpy()
    out = {}
    if proba is not None:
        out["val_class_accuracy"] = float((proba[:, :-1].argmax(axis=1) == cls).mean())
        if len(part):
            out["val_background_recall"] = float((infer(net, boxes.x[part].float())[0].argmax(axis=1)
                                                  == proba.shape[1] - 1).mean())
    if views is not None:
        pred = views[np.arange(len(cls)), cls]
        gt = np.stack([boxes.angles[a][obj].numpy() for a in ANGLES], axis=1)
        vm = metrics.viewpoint_metrics(pred, gt)
        out |= {"val_acc_pi_6": vm["acc_pi_6"], "val_median_error_deg": vm["median_error_deg"]}
    return out


def run(params: Params, method: str) -> dict[str, Any]:
    vp = params.viewpoint
    m = parse_method(method)
    boxes = Boxes(params)
    start = time.perf_counter()
    cfg = Config(method=method, categories=boxes.categories, channels=boxes.info["dim"] // vp.grid ** 2, grid=vp.grid,
                 bins=vp.bins, geom_bins=vp.geom_bins, geom_sigma=vp.geom_sigma, width=vp.width, hidden=vp.hidden,
                 dropout=vp.dropout)
    net, history = train_net(cfg, boxes, params, m.real, method)
    fp = feature_params(params)
    extractor = FeatureExtractor(fp, layers=[vp.layer], seed=params.seed)
    info = {"method": method, "categories": list(cfg.categories), "layer": vp.layer, "features": fp.model_dump(mode="json"),
            "weights_source": extractor.info.get("source"),
            "training_data": "synthetic only (composites of renders)" if not m.real
            else f"synthetic + real annotated photos ({vp.real_train.name if vp.real_train else '?'})",
            "pose_config": None, "detector_config": None, "detector_method": DETECTOR}
    if m.needs_detector:
        det_folder = Path(params.paths.viewpoint) / DETECTOR
        detector = load(det_folder, json.loads((det_folder / "predictor.json").read_text())).detector \
            if (det_folder / "predictor.json").is_file() else None
        if detector is None:
            raise FileNotFoundError(f"{det_folder}: the independent detector is not trained "
                                    "(run the train_viewpoint_detector stage first)")
        if detector.cfg.categories != cfg.categories:
            raise ValueError(f"{det_folder}: detector trained for {detector.cfg.categories}, the boxes have "
                             f"{cfg.categories}; re-run train_viewpoint_detector")
        model = ViewpointModel(net, detector, extractor, vp.layer,
                               info | {"pose_config": _cfg_json(cfg), "detector_config": _cfg_json(detector.cfg)})
    else:
        model = ViewpointModel(net if m.representation else None, net, extractor, vp.layer,
                               info | {"detector_config": _cfg_json(cfg), "detector_method": method})
    out = Path(params.paths.viewpoint) / method
    model.save(out)
    plot_dir = Path(params.paths.plots) / "train_viewpoint" / method
    plot_dir.mkdir(parents=True, exist_ok=True)
    history.to_csv(plot_dir / "history.csv", index=False)
    loss_cols = [c for c in history.columns if c.startswith("loss_")]
    plots.curves_png(history["step"].to_numpy(), {c: history[c].to_numpy() for c in loss_cols},
                     f"train_viewpoint {method}: training loss", plot_dir / "loss.png", xlabel="epoch", ylabel="loss")
    last = history.iloc[-1].to_dict()
    result = {"method": method, "categories": list(cfg.categories), "train_objects": int(len(boxes.train_index(m.real, True)[0])),
              "val_models": boxes.val_models, "epochs": vp.epochs, "seconds": round(time.perf_counter() - start, 1),
              "synthetic_val": {k[4:]: round(float(v), 4) for k, v in last.items() if k.startswith("val_")},
              "final_loss": {k[5:]: round(float(v), 4) for k, v in last.items() if k.startswith("loss_")}}
    write_metrics(Path(params.paths.metrics) / "train_viewpoint", method, result)
    log.info("train_viewpoint %s: %d epochs in %.0f s; synthetic val %s -> %s", method, vp.epochs, result["seconds"],
             result["synthetic_val"], out)
    return result


def _cfg_json(cfg: Config) -> dict[str, Any]:
    d = asdict(cfg)
    d["categories"] = list(cfg.categories)
    return d


def main() -> None:
    stage_main("train_viewpoint", run, item="method")


if __name__ == "__main__":
    main()
