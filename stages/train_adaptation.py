"""train_adaptation stage: the real -> rendered feature adaptation φ (seed 004 §4.2).

Training pairs are the composite stage's grey-scale adaptation pairs: a render pasted on a
photo background (x: "real") and the same render, same placement, on white (y: rendered),
both featurised at the object's box at ``adaptation.layer``
(core/features.py). Each variant of ``adaptation.variants`` (models/adaptation.py) is
trained with the squared-cosine loss and the seed's SGD (lr 1, x0.1 every 15 epochs,
momentum 0.9, weight decay 5e-4, batches of 128); whole models are held out for the
validation loss.

Output ``paths.adaptation``/:
  <variant>.npz     the variant's state dict as arrays (loaded with allow_pickle=False)
  adaptation.json   layer, channels, grid, variants, default, the backbone and its weights
                    source, per-variant validation loss and cosine
  pairs.npz         sample_id, x (composite) and y (clean render) features, float16: the
                    exemplar stage's "composites" exemplars come from x
``paths.metrics``/train_adaptation.json; ``paths.plots``/train_adaptation/: history.csv
(per epoch; logged to MLflow as step-wise metrics) and loss.png.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from core import plots
from core.features import ADAPTATION_META as META
from core.features import LAYER_CUTS, PAIRS, FeatureExtractor
from core.io import MANIFEST, atomic_dir, read_image, read_manifest, rng_for, write_metrics
from core.params import AdaptationParams, Params
from models.adaptation import Adaptation, squared_cosine_loss
from stages._cli import stage_main

log = logging.getLogger("cad2real.train_adaptation")



def pair_features(extractor: FeatureExtractor, layer: str, pairs_dir: Path, composites: pd.DataFrame,
                  pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Features of the object box of every pair's composite (x) and clean render (y)."""
    boxes = composites.set_index("composite_id")[["bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"]]
    fx, fy = [], []
    for row in tqdm(pairs.itertuples(), total=len(pairs), desc="pair features", unit="pair", mininterval=2.0):
        if row.composite_id not in boxes.index:
            raise ValueError(f"{pairs_dir / MANIFEST}: pair {row.pair_id} names composite {row.composite_id}, "
                             "which the composites manifest does not have; re-run the composite stage")
        box = boxes.loc[row.composite_id].to_numpy(np.float64)[None]
        fx.append(extractor.box_features(read_image(pairs_dir / row.image), box)[layer])
        fy.append(extractor.box_features(read_image(pairs_dir / row.render), box)[layer])
    return np.concatenate(fx), np.concatenate(fy)


def split_models(models: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A bool mask over ``models`` (one entry per pair): True for the held-out models."""
    unique = np.array(sorted(set(models)))
    rng = rng_for(seed, "adaptation", "val")
    n_val = int(round(fraction * len(unique)))
    held = set(rng.permutation(unique)[:n_val].tolist()) if n_val else set()
    return np.array([m in held for m in models])


def layer_shape(layer: str, dim: int, grid: int) -> tuple[int, int]:
    """(channels, grid) of a feature: conv layers are C x grid x grid, ``gap`` is C x 1 x 1."""
    if layer == "gap":
        return dim, 1
    if dim % (grid * grid):
        raise ValueError(f"feature dimension {dim} of layer {layer} is not channels x {grid} x {grid}")
    return dim // (grid * grid), grid


@torch.no_grad()
def evaluate(phi: Adaptation, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean squared-cosine loss, mean cosine) of φ(x) against y."""
    if not len(x):
        return float("nan"), float("nan")
    out = phi(x)
    cos = torch.nn.functional.cosine_similarity(out, y, dim=1, eps=1e-8)
    return float(squared_cosine_loss(out, y)), float(cos.mean())


def train_variant(variant: str, channels: int, grid: int, x: torch.Tensor, y: torch.Tensor, xv: torch.Tensor,
                  yv: torch.Tensor, p: AdaptationParams, seed: int) -> tuple[Adaptation, list[dict[str, Any]]]:
    """SGD on the squared-cosine loss; the per-epoch history (train loss, val loss and cosine, lr)."""
    torch.manual_seed(seed)
    phi = Adaptation(variant, channels, grid)
    history: list[dict[str, Any]] = []
    if variant == "none":
        return phi, history
    opt = torch.optim.SGD(phi.parameters(), lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=p.lr_step_epochs, gamma=p.lr_gamma)
    gen = torch.Generator().manual_seed(seed)
    for epoch in tqdm(range(1, p.epochs + 1), desc=f"adaptation {variant}", unit="epoch", mininterval=2.0):
        phi.train()
        total, n = 0.0, 0
        for idx in torch.randperm(len(x), generator=gen).split(p.batch_size):
            loss = squared_cosine_loss(phi(x[idx]), y[idx])
            if not torch.isfinite(loss):
                raise ValueError(f"adaptation {variant}: the loss became {float(loss)} at epoch {epoch}; "
                                 f"lower adaptation.lr (now {p.lr})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, n = total + loss.item() * len(idx), n + len(idx)
        phi.eval()
        val_loss, val_cos = evaluate(phi, xv, yv)
        history.append({"epoch": epoch, "variant": variant, "train_loss": total / n, "val_loss": val_loss,
                        "val_cosine": val_cos, "lr": opt.param_groups[0]["lr"]})
        sched.step()
    return phi, history


def save_variant(folder: Path, phi: Adaptation) -> None:
    np.savez(folder / f"{phi.variant}.npz", **{k: v.detach().numpy() for k, v in phi.state_dict().items()})


def run(params: Params) -> dict[str, Any]:
    p = params.adaptation
    if p.layer not in LAYER_CUTS:
        raise ValueError(f"adaptation.layer {p.layer!r}: one of {sorted(LAYER_CUTS)}")
    pairs_dir = Path(params.paths.adaptation_pairs)
    pairs = read_manifest(pairs_dir / MANIFEST).sort_values("pair_id", kind="stable").reset_index(drop=True)
    if pairs.empty:
        raise ValueError(f"{pairs_dir / MANIFEST}: no adaptation pairs; set composite.adaptation_pairs: true")
    composites = read_manifest(Path(params.paths.composites) / MANIFEST)
    extractor = FeatureExtractor(params.features, layers=[p.layer], seed=params.seed)
    log.info("train_adaptation: %d (composite, render) pairs of %d models, layer %s of %s (%s weights)",
             len(pairs), pairs["model_id"].nunique(), p.layer, params.features.backbone, extractor.info["source"])
    fx, fy = pair_features(extractor, p.layer, pairs_dir, composites, pairs)
    channels, grid = layer_shape(p.layer, fx.shape[1], params.features.grid)
    held = split_models(pairs["model_id"].to_numpy(), p.val_models, params.seed)
    x, y = torch.from_numpy(fx[~held]), torch.from_numpy(fy[~held])
    xv, yv = torch.from_numpy(fx[held]), torch.from_numpy(fy[held])
    none_loss, none_cos = evaluate(Adaptation("none", channels, grid), xv, yv)
    log.info("train_adaptation: %d training / %d validation pairs; without adaptation the val loss is %.4f "
             "(mean cosine %.3f)", len(x), len(xv), none_loss, none_cos)
    results: dict[str, Any] = {"none": {"val_loss": round(none_loss, 5), "val_cosine": round(none_cos, 4)}}
    history: list[dict[str, Any]] = []
    out = Path(params.paths.adaptation)
    with atomic_dir(out) as tmp:
        for variant in p.variants:
            phi, h = train_variant(variant, channels, grid, x, y, xv, yv, p, params.seed)
            save_variant(tmp, phi)
            history += h
            last = h[-1] if h else {"train_loss": float("nan"), "val_loss": none_loss, "val_cosine": none_cos}
            results[variant] = {k: round(float(last[k]), 5) for k in ("train_loss", "val_loss", "val_cosine")}
            log.info("train_adaptation: %-11s train loss %.4f, val loss %.4f (none: %.4f), val cosine %.3f",
                     variant, last["train_loss"], last["val_loss"], none_loss, last["val_cosine"])
        meta = {"layer": p.layer, "channels": channels, "grid": grid, "variants": list(p.variants),
                "default": p.default, "features": {**extractor.info, "image_size": params.features.image_size,
                                                   "grey": params.features.grey, "relu": params.features.relu},
                "pairs": {"train": int(len(x)), "val": int(len(xv))}, "results": results}
        (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        np.savez(tmp / PAIRS, sample_id=pairs["sample_id"].to_numpy().astype(str), x=fx.astype(np.float16),
                 y=fy.astype(np.float16))
    write_plots(Path(params.paths.plots) / "train_adaptation", history, none_loss)
    values = {"layer": p.layer, "pairs_train": int(len(x)), "pairs_val": int(len(xv)), "default": p.default,
              "weights_source": extractor.info["source"], "variants": results}
    write_metrics(params.paths.metrics, "train_adaptation", values)
    log.info("train_adaptation: wrote %d variants to %s", len(p.variants), out)
    return values


def write_plots(folder: Path, history: list[dict[str, Any]], none_loss: float) -> None:
    """history.csv (one row per epoch, a column per variant and quantity) and loss.png."""
    folder.mkdir(parents=True, exist_ok=True)
    if not history:
        return
    frame = pd.DataFrame(history)
    wide = frame.pivot(index="epoch", columns="variant", values=["train_loss", "val_loss", "val_cosine"])
    wide.columns = [f"{variant}.{quantity}" for quantity, variant in wide.columns]
    wide = wide.reset_index()
    wide.insert(0, "step", wide["epoch"])
    wide.to_csv(folder / "history.csv", index=False, float_format="%.6g")
    curves = {f"{v} val": wide[f"{v}.val_loss"].tolist() for v in frame["variant"].unique()}
    curves["none (no adaptation)"] = [none_loss] * len(wide)
    plots.curves_png(wide["epoch"].tolist(), curves, "adaptation: validation squared-cosine loss "
                     "(held-out models' composite -> render pairs)", folder / "loss.png", xlabel="epoch",
                     ylabel="loss", log_y=True)


def main() -> None:
    stage_main("train_adaptation", run)


if __name__ == "__main__":
    main()
