"""What makes CAD renders add to the ImageNet zero-shot reference on real IKEA photos.

    .venv/bin/python benchmarks/imagenet_levers.py [--composites data/composites] [--out FILE.md]

Issue 18's levers on frozen ImageNet MobileNetV2 features (the pipeline's own code: the
backbone of ``core.pretrained``, the label map of ``params.yaml: imagenet``, the prior of
``models.heads.LabelMapPrior``, the composites of ``core.trainsets``), each scored on IKEA
``val`` (for choices) and ``test`` (report only: a row is *kept* on its val figure):

- the reference: the ImageNet classifier + label map, photos padded or stretched;
- the CAD-trained nearest class mean (the renders' class means, the pipeline's default head);
- logit fusion ``t * cos(x, mean_c) + w * log P_imagenet(c)`` for a grid of w (t: the
  softmax temperature fitted on the composites, as the pipeline's ncm head does), the
  pipeline's ``prior_weight``;
- unsupervised adaptation from the **unlabelled** IKEA val photos (their labels are never
  read for it): target-mean centring of the features (NCM), class-bias centring of the
  fused scores, and self-training — a teacher (the zero-shot reference, or the fusion
  with the best val weight) pseudo-labels the photos, a
  class-balanced softmax head learns them (with the composites' true labels beside them,
  weight alpha). A self-trained head has seen the val photos, so its val figure is
  cross-fitted: trained on every other photo, scored on the rest, both ways;
- test-time flips (mean of the image's and its mirror's scores);
- retrieval of the k nearest composites (their class votes) and its ensemble with the prior.

Needs the composites (``dvc repro composite`` or ``make run`` first) and ``../shared/data``
(the MobileNetV2 weights and labels, the IKEA photos). About 3 min on the 2-core machine.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import platform
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core import metrics as M
from core.evalsets import load_ikea
from core.io import read_image
from core.params import LABEL_SETS, SelfTrainingParams, load_params
from core.predictors import to_input
from core.pretrained import find_backbone, imagenet_labels, label_map_columns
from core.selftrain import fit_student
from core.trainsets import load_composites
from flows.smoke import absolute_shared
from models.heads import LabelMapPrior

ROOT = Path(__file__).resolve().parents[1]
SIZE = 224
CLASSES = LABEL_SETS["ikea"]
FUSION_WEIGHTS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


class Features:
    """Pooled features and the ImageNet prior of images (and their mirrors) at 224 px."""

    def __init__(self, backbone: torch.nn.Module, prior: LabelMapPrior):
        self.backbone, self.prior = backbone, prior

    @torch.no_grad()
    def __call__(self, images: list[np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list[np.ndarray]] = {"emb": [], "emb_flip": [], "prior": [], "prior_flip": []}
        for i in range(0, len(images), 64):
            x = torch.from_numpy(np.stack(images[i : i + 64]).astype(np.float32)).permute(0, 3, 1, 2)
            for key, batch in (("", x), ("_flip", x.flip(3))):
                emb = self.backbone.embed((batch - 128.0) / 128.0)
                out["emb" + key].append(emb.numpy())
                out["prior" + key].append(self.prior(emb).numpy())
        return {k: np.concatenate(v) for k, v in out.items()}


def normalise(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)


def ikea_photos() -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """The IKEA photos of ``../shared/data``, their class indices into CLASSES and their split."""
    ikea = load_ikea(ROOT.parent / "shared/data/ikea/IKEA", ROOT.parent / "shared/data/ikea/splits.csv")
    photos, truth, split = [], [], []
    for image, obj in ikea.objects():
        photos.append(read_image(image.image))
        truth.append(CLASSES.index(obj.category))
        split.append(image.split)
    return photos, np.array(truth), np.array(split)


def fit_temperature(cos: np.ndarray, labels: np.ndarray) -> float:
    """The softmax temperature t minimising the cross-entropy of t * cos on the composites."""
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], max_iter=100)
    c, y = torch.from_numpy(cos).float(), torch.from_numpy(labels)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(log_t.exp() * c, y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.exp())


def knn_logits(emb: np.ndarray, comp_emb: np.ndarray, comp_labels: np.ndarray, k: int) -> np.ndarray:
    """Retrieval: the votes of the k most similar composites (cosine), each class's votes
    divided by its share of the composites, as log-frequencies (add-half smoothed)."""
    nearest = np.argsort(-(emb @ comp_emb.T), axis=1)[:, :k]
    votes = np.zeros((len(emb), len(CLASSES)))
    np.add.at(votes, (np.repeat(np.arange(len(emb)), k), comp_labels[nearest].ravel()), 1.0)
    share = np.bincount(comp_labels, minlength=len(CLASSES)) / len(comp_labels)
    votes = votes / share.clip(1e-12) / len(CLASSES) + 0.5
    return np.log(votes / votes.sum(1, keepdims=True))


def scores(truth: np.ndarray, logits: np.ndarray) -> tuple[float, float]:
    names = np.array(CLASSES)
    pred = names[logits.argmax(1)]
    return M.accuracy(names[truth], pred), M.mean_class_accuracy(names[truth], pred, list(CLASSES))


def self_trained_head(emb: np.ndarray, pseudo: np.ndarray, comp: np.ndarray, comp_labels: np.ndarray,
                      alpha: float, c: float) -> Callable[[np.ndarray], np.ndarray]:
    """The pipeline's self-trained head (core.selftrain.fit_student): the photos'
    pseudo-labels, each class weighing the same, beside the composites' true labels with
    total weight alpha. Returns x -> logits."""
    w, b = fit_student(emb, pseudo, comp, comp_labels, len(CLASSES),
                       SelfTrainingParams(composite_weight=alpha, c=c))
    return lambda q: q @ w + b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--composites", type=Path, default=ROOT / "data" / "composites")
    ap.add_argument("--out", type=Path, default=None, help="also write the table to this Markdown file")
    args = ap.parse_args()
    params = load_params(ROOT / "params.yaml")
    spec = params.methods["imagenet_zeroshot"]
    backbone, _ = find_backbone(spec.backbone, absolute_shared(spec.weights, ROOT))
    backbone.eval()
    labels = imagenet_labels(absolute_shared(params.imagenet.labels, ROOT))
    columns, _ = label_map_columns(labels, params.imagenet.label_map, CLASSES)
    features = Features(backbone, LabelMapPrior.from_columns(backbone.classifier, columns))
    torch.manual_seed(0)

    photos, truth, split = ikea_photos()
    real = {mode: features([to_input(p, SIZE, mode) for p in photos]) for mode in ("pad", "stretch")}
    data = load_composites(args.composites, CLASSES, SIZE, targets=False, val=params.trainer.val_models,
                           test=params.trainer.test_models, seed=params.seed)
    rows = data.indices("train")
    comp = features([data.images[i] for i in rows])
    comp_emb = normalise(np.concatenate([comp["emb"], comp["emb_flip"]]))
    comp_labels = np.concatenate([data.labels[rows], data.labels[rows]])
    index = np.array([CLASSES.index(c) for c in data.categories])
    means = normalise(np.stack([comp_emb[comp_labels == k].mean(0) for k in range(len(data.categories))]))
    comp_labels = index[comp_labels]
    full_means = np.zeros((len(CLASSES), means.shape[1]))
    full_means[index] = means
    temperature = fit_temperature(comp_emb @ full_means.T, comp_labels)
    val, test = split == "val", split == "test"

    table: list[tuple[str, str, tuple[float, float], tuple[float, float]]] = []

    def row(lever: str, setting: str, logits: np.ndarray, val_logits: np.ndarray | None = None) -> None:
        v = scores(truth[val], logits[val] if val_logits is None else val_logits)
        table.append((lever, setting, v, scores(truth[test], logits[test])))
        print(f"| {lever} | {setting} | {v[0]:.3f} / {v[1]:.3f} | {table[-1][3][0]:.3f} / {table[-1][3][1]:.3f} |",
              flush=True)

    print(f"# ImageNet-prior levers, IKEA label set; {datetime.date.today()}, {platform.machine()}, "
          f"{torch.get_num_threads()} threads; {val.sum()} val / {test.sum()} test photos, {len(rows)} training "
          f"composites (+ mirrors) from {args.composites}; NCM temperature {temperature:.1f}")
    print("| lever | setting | IKEA val acc. / per-class | IKEA test acc. / per-class |\n| --- | --- | --- | --- |")
    for mode, tta in itertools.product(("pad", "stretch"), (False, True)):
        f = real[mode]
        prior = (f["prior"] + f["prior_flip"]) / 2 if tta else f["prior"]
        emb = normalise(f["emb"] + f["emb_flip"]) if tta else normalise(f["emb"])
        cos = emb @ full_means.T
        tag = f"{mode}{', flips' if tta else ''}"
        row("ImageNet zero-shot (reference)", tag, prior)
        row("CAD nearest class mean", tag, cos)
        for w in FUSION_WEIGHTS:
            row("fusion: NCM + w log P_imagenet", f"{tag}, w={w:g}", temperature * cos + w * prior)
        for k in (1, 20):
            knn = knn_logits(emb, comp_emb, comp_labels, k)
            row("retrieval: votes of the k nearest composites", f"{tag}, k={k}", knn)
            row("ensemble: retrieval + w log P_imagenet", f"{tag}, k={k}, w=4", knn + 4.0 * prior)
        centred = normalise(emb - emb[val].mean(0)) @ normalise(full_means - comp_emb.mean(0)).T
        row("target-mean centring (NCM; unlabelled val)", tag, centred)
        for w in (0.5, 1.0):
            fused = temperature * cos + w * prior
            row("class-bias centring of the fusion (unlabelled val)", f"{tag}, w={w:g}", fused - fused[val].mean(0))

    # Self-training on the unlabelled val photos, stretched (the reference's framing).
    f = real["stretch"]
    emb = normalise(f["emb"])
    emb_both = np.concatenate([emb, normalise(f["emb_flip"])])
    val_rows = np.flatnonzero(val)
    fusions = [(w, scores(truth[val], (temperature * (emb @ full_means.T) + w * f["prior"])[val])[1])
               for w in FUSION_WEIGHTS]
    best_w = max(fusions, key=lambda t: t[1])[0]  # the fusion chosen on val teaches
    teachers = {"ImageNet zero-shot": f["prior"], f"fusion w={best_w:g}": temperature * (emb @ full_means.T)
                + best_w * f["prior"]}
    for (name, teacher), alpha in itertools.product(teachers.items(), (0.0, 0.3, 1.0)):
        pseudo = teacher.argmax(1)

        def head(rows_: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
            both = np.concatenate([rows_, rows_ + len(emb)])
            return self_trained_head(emb_both[both], np.concatenate([pseudo[rows_]] * 2), comp_emb, comp_labels,
                                     alpha, c=0.3)

        folds = [val_rows[0::2], val_rows[1::2]]
        crossfit = np.zeros((val.sum(), len(CLASSES)))
        position = {r: i for i, r in enumerate(val_rows)}
        for a, b in ((0, 1), (1, 0)):
            crossfit[[position[r] for r in folds[b]]] = head(folds[a])(emb[folds[b]])
        row("self-training on unlabelled val (cross-fitted val)", f"stretch, teacher {name}, alpha={alpha:g}",
            head(val_rows)(emb), val_logits=crossfit)
    if args.out is not None:
        lines = ["| lever | setting | IKEA val acc. / per-class | IKEA test acc. / per-class |", "| --- | --- | --- | --- |"]
        lines += [f"| {a} | {b} | {v[0]:.3f} / {v[1]:.3f} | {t[0]:.3f} / {t[1]:.3f} |" for a, b, v, t in table]
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
