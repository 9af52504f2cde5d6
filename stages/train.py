"""Stage ``train@<method>``: one method of ``params.yaml: methods`` trained on composites.

Every method learns the classes of ``trainer.label_set`` from synthetic data only, with
the same model-level splits (train / val picks the epoch / test = the synthetic test
split), and writes ``<paths.models>/<method>`` (predictor.json + weights.npz),
``<paths.metrics>/train/<method>.json`` and ``<paths.plots>/train/<method>/`` (training
history CSV, noise ratios, reconstruction grid, PCA of descriptors). Kinds:

- ``hog_softmax``: the wiring baseline (core/baseline.py);
- ``classifier``: ZigzagNet / SqueezeNet 1.1 / AlexNet-style on RGB, optionally with the
  multi-triplet loss;
- ``conjugate``: GM-CML and its baselines (seed 000 eq. 11: KL + reconstruction +
  pairwise + triplet + softmax; eq. 8-9 coupled noise, or fixed noise for GM-ML);
- ``pretrained``: an ImageNet backbone from a local file, frozen / fine-tuned / unfrozen
  after N steps (seed 003); without weights on disk it says so and trains from scratch.
  ``prior_weight`` > 0 adds the ImageNet classifier's label-map log-probabilities to the
  head's logits at inference (logit fusion);
- ``imagenet_zeroshot``: the reference to beat, nothing trained: the ImageNet classifier
  with ``imagenet.label_map`` (written as a model folder so every evaluation treats it alike).

A killed run resumes from its checkpoint under ``paths.staging`` (core/training.py).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from core import metrics as M
from core import plots, selftrain
from core.baseline import HogSoftmax, features
from core.io import stable_hash, write_metrics
from core.networks import TorchPredictor, build_network, model_size_mb
from core.params import (LABEL_SETS, ClassifierMethod, ConjugateMethod, HogSoftmaxMethod, Params, PretrainedMethod,
                         TrainerParams, ZeroShotMethod)
from core.trainsets import (MEAN, PRODUCT_SHOTS_DATA, STD, TRAINING_DATA, TrainingData, TripletSampler,
                            load_composites, load_product_shots)
from core.training import FitResult, LoopSettings, fit, pick_device
from models.conjugate import ConjugateNet
from models.heads import FeatureClassifier, NormalizedLinear
from models.losses import kl_divergence, multi_triplet_loss, reconstruction_loss, total_loss
from models.noise import apply_noise, batch_variance, noise_ratios
from stages._cli import stage_main

log = logging.getLogger("cad2real.train")
# The ImageNet MobileNets take (u - 128) / 128 for uint8 RGB u, as the TFLite files'
# input quantisation says (core/pretrained.py): mean = std = 128/255 on [0, 1] pixels.
PRETRAINED_NORM = (128 / 255, 128 / 255)


@dataclass
class Augment:
    """One batch's random augmentation, drawn once and applied to images and targets
    alike: horizontal flips and square crops (geometric), colour jitter and grey-scale
    (images only)."""

    flips: np.ndarray  # (N,) bool
    crops: np.ndarray  # (N, 3) x0, y0, side as fractions of the image side
    gains: np.ndarray  # (N, 3) per-channel gain
    shift: np.ndarray  # (N,) brightness shift in [0, 1] units
    grey: np.ndarray  # (N,) bool

    @classmethod
    def flips_only(cls, flips: np.ndarray) -> "Augment":
        """Horizontal flips where ``flips`` is True, nothing else."""
        n = len(flips)
        return cls(flips, np.tile([0.0, 0.0, 1.0], (n, 1)), np.ones((n, 3)), np.zeros(n), np.zeros(n, bool))

    @classmethod
    def draw(cls, n: int, t: TrainerParams, rng: np.random.Generator) -> "Augment":
        side = rng.uniform(t.crop_scale.lo, t.crop_scale.hi, n)
        x0, y0 = rng.uniform(0, 1, n) * (1 - side), rng.uniform(0, 1, n) * (1 - side)
        j = t.color_jitter
        return cls(rng.random(n) < 0.5 if t.hflip else np.zeros(n, bool), np.stack([x0, y0, side], 1),
                   rng.uniform(1 - j, 1 + j, (n, 3)), rng.uniform(-j, j, n) * 0.3, rng.random(n) < t.grayscale_p)

    def geometric(self, arr: np.ndarray, interp: int) -> np.ndarray:
        out = arr.copy()
        size = arr.shape[1]
        for i, (x0, y0, side) in enumerate(self.crops):
            if side < 1.0:
                a, b, s = int(round(x0 * size)), int(round(y0 * size)), max(2, int(round(side * size)))
                out[i] = cv2.resize(arr[i, b : b + s, a : a + s], (size, size), interpolation=interp)
        out[self.flips] = out[self.flips, :, ::-1]
        return out

    def photometric(self, x: np.ndarray) -> np.ndarray:
        """``x`` (N, S, S, 3) float in [0, 1]."""
        x = x * self.gains[:, None, None, :] + self.shift[:, None, None, None]
        x[self.grey] = x[self.grey].mean(axis=3, keepdims=True)
        return np.clip(x, 0.0, 1.0).astype(np.float32)


class Batches:
    """uint8 images (and semantic targets) of the training data -> normalised tensors,
    augmented when an :class:`Augment` is given."""

    def __init__(self, data: TrainingData, norm: tuple[float, float], device: torch.device):
        self.data, self.mean, self.std, self.device = data, norm[0], norm[1], device

    def images(self, rows: np.ndarray, aug: Augment | None = None) -> torch.Tensor:
        x = self.data.images[rows]
        x = (aug.geometric(x, cv2.INTER_LINEAR) if aug is not None else x).astype(np.float32) / 255.0
        if aug is not None:
            x = aug.photometric(x)
        x = (x - self.mean) / self.std
        return torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).to(self.device)

    def targets(self, rows: np.ndarray, aug: Augment | None = None) -> torch.Tensor:
        assert self.data.targets is not None
        y = self.data.targets[rows]
        y = (aug.geometric(y, cv2.INTER_NEAREST) if aug is not None else y).astype(np.float32) / 255.0
        return torch.from_numpy(y.transpose(0, 3, 1, 2).copy()).to(self.device)

    def labels(self, rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.data.labels[rows]).to(self.device)


class NetStep:
    """One step of a ``classifier`` or ``conjugate`` method: softmax loss on the batch,
    the multi-triplet loss (eq. 5-6) on ``sets_per_batch`` sets built from the pose
    metadata, and for conjugate nets L_enc-gen (eq. 4, 12, 14) with the noise of eq. 8."""

    def __init__(self, net: torch.nn.Module, spec: ClassifierMethod | ConjugateMethod, batches: Batches,
                 sampler: TripletSampler | None, trainer: TrainerParams, seed: int):
        self.net, self.spec, self.batches, self.sampler = net, spec, batches, sampler
        self.trainer, self.seed = trainer, seed
        self.conjugate = isinstance(spec, ConjugateMethod)
        # Var(M') and Var(M) of the previous batch (eq. 9); (0, 1) before the first
        self.var_recon, self.var_target = 0.0, 1.0

    def state_dict(self) -> dict[str, Any]:
        return {"var_recon": self.var_recon, "var_target": self.var_target}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.var_recon, self.var_target = float(state["var_recon"]), float(state["var_target"])

    def ratios(self) -> tuple[float, float]:
        s = self.spec
        assert isinstance(s, ConjugateMethod)
        if s.noise == "adaptive":
            r_rec, r_cls = noise_ratios(self.var_recon, self.var_target, alpha=s.alpha, beta=s.beta,
                                        m_noise=s.m_noise)
            return float(r_rec), float(r_cls)
        return (s.fixed_r_rec, s.fixed_r_cls) if s.noise == "fixed" else (0.0, 0.0)

    def __call__(self, rows: np.ndarray, step: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, step, 7])
        triplet = self.spec.triplet
        n_sets = 0
        if triplet.enabled and self.sampler is not None:
            n_sets = min(triplet.sets_per_batch, len(rows))
            refs = np.searchsorted(self.sampler.rows, rows[:n_sets])
            pos, negs = self.sampler.sample(refs, rng)
            rows = np.concatenate([rows, pos, negs.ravel()])
        aug = Augment.draw(len(rows), self.trainer, rng)
        x, y = self.batches.images(rows, aug), self.batches.labels(rows)
        logs: dict[str, Any] = {}
        terms: dict[str, torch.Tensor] = {}  # eq. 11, summed in this order by total_loss
        weights: dict[str, float] = {}
        if self.conjugate:
            r_rec, r_cls = self.ratios()
            out = self.net(x, rec_input=apply_noise(x, r_rec), cls_input=apply_noise(x, r_cls))
            target = self.batches.targets(rows, aug)
            s = self.spec
            terms["recon"] = logs["recon"] = reconstruction_loss(out.recon, target)
            terms["softmax"] = logs["softmax"] = F.cross_entropy(out.logits, y)
            weights |= {"recon": s.recon_weight, "softmax": s.softmax_weight}
            if out.mu is not None:
                terms["kl"] = logs["kl"] = kl_divergence(out.mu, out.logvar)
                weights["kl"] = s.kl_weight if s.kl_weight is not None else out.mu[0].numel() / target[0].numel()
            self.var_recon = float(batch_variance(out.recon.detach()))
            self.var_target = float(batch_variance(target))
            logs |= {"r_rec": r_rec, "r_cls": r_cls, "var_ratio": self.var_recon / max(self.var_target, 1e-12)}
            desc = out.descriptor
        else:
            desc = self.net.embed(x)
            terms["softmax"] = logs["softmax"] = F.cross_entropy(self.net.classify(desc), y)
        if n_sets:
            f = F.normalize(desc, dim=1)
            b = len(rows) - n_sets * (2 + triplet.other_class_negatives)
            f_ref, f_pos = f[:n_sets], f[b : b + n_sets]
            f_neg = f[b + n_sets :].reshape(n_sets, 1 + triplet.other_class_negatives, -1)
            terms["multi_triplet"], parts = multi_triplet_loss(f_ref, f_pos, f_neg, margin=triplet.margin,
                                                               pairwise=triplet.pairwise)
            weights["multi_triplet"] = triplet.weight
            logs |= {"pair": parts["pair"], "triplet": parts["triplet"]}
        loss = total_loss(terms, weights)
        return {"loss": loss, **{k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in logs.items()}}


class HeadStep:
    """A head on features: cached (frozen backbone) or computed (fine-tuning)."""

    def __init__(self, net: torch.nn.Module, batches: Batches, trainer: TrainerParams, seed: int,
                 cached: tuple[torch.Tensor, torch.Tensor] | None = None, unfreeze_at: int | None = None):
        self.net, self.batches, self.trainer, self.seed = net, batches, trainer, seed
        self.cached, self.unfreeze_at = cached, unfreeze_at

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def __call__(self, rows: np.ndarray, step: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, step, 7])
        y = self.batches.labels(rows)
        if self.cached is not None:  # features computed once: flips are the only augmentation
            plain, flipped = self.cached
            flips = rng.random(len(rows)) < 0.5 if self.trainer.hflip else np.zeros(len(rows), bool)
            idx = torch.from_numpy(rows)
            feats = torch.where(torch.from_numpy(flips)[:, None], flipped[idx], plain[idx])
            logits = self.net.classify(feats.to(y.device))
        else:
            if self.unfreeze_at is not None:
                self.net.backbone.requires_grad_(step >= self.unfreeze_at)
            logits = self.net(self.batches.images(rows, Augment.draw(len(rows), self.trainer, rng)))
        loss = F.cross_entropy(logits, y)
        return {"loss": loss, "softmax": float(loss.detach())}


def accuracy_on(net: torch.nn.Module, batches: Batches, rows: np.ndarray,
                feats: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class indices and descriptors for ``rows`` (eval mode, no flips)."""
    net.eval()
    preds, descs = [], []
    with torch.no_grad():
        for i in range(0, len(rows), 128):
            chunk = rows[i : i + 128]
            if feats is not None:
                desc = feats[torch.from_numpy(chunk)].to(batches.device)
                logits = net.classify(desc)
            elif isinstance(net, ConjugateNet):
                out = net(batches.images(chunk))
                logits, desc = out.logits, out.descriptor
            else:
                desc = net.embed(batches.images(chunk))
                logits = net.classify(desc)
            preds.append(logits.argmax(1).cpu().numpy())
            descs.append(desc.cpu().numpy())
    net.train()
    if not preds:
        return np.zeros(0, np.int64), np.zeros((0, 1), np.float32)
    return np.concatenate(preds), np.concatenate(descs)


def arch_of(spec: ClassifierMethod | ConjugateMethod | PretrainedMethod, padding: str = "tf") -> dict[str, Any]:
    if isinstance(spec, ConjugateMethod):
        return {"type": "conjugate", "reconstructor": spec.reconstructor, "rec_width": spec.rec_width,
                "latent_channels": spec.latent_channels, "classifier": spec.classifier, "width": spec.width,
                "dropout": spec.dropout, "feedback": spec.feedback}
    if isinstance(spec, ClassifierMethod):
        return {"type": "classifier", "classifier": spec.classifier, "width": spec.width, "dropout": spec.dropout}
    return {"type": "pretrained", "backbone": spec.backbone, "padding": padding, "dropout": spec.dropout,
            "head": spec.head}


def pretrained_backbone(spec: PretrainedMethod) -> tuple[torch.nn.Module | None, dict[str, Any]]:
    """The backbone with its ImageNet weights, or None (with a warning saying what was
    searched) when there are none on disk: the method then trains it from scratch."""
    from core.pretrained import BackboneNotFound, find_backbone

    try:
        backbone, info = find_backbone(spec.backbone, spec.weights)
    except BackboneNotFound as exc:
        log.warning("train: no pre-trained weights for %s (%s); training it from scratch instead "
                    "(every layer learns; see README 'Pre-trained weights')", spec.backbone, exc)
        return None, {"backbone": spec.backbone, "weights": None, "source": "none (trained from scratch)",
                      "padding": "torch", "input_size": 224}
    return backbone, {**info, "padding": "torch" if info["source"] == "torchvision" else "tf"}


ZEROSHOT_DATA = "none: ImageNet classifier + label map, no CAD"


def imagenet_prior(params: Params, categories: tuple[str, ...]) -> tuple[list[list[int]], list[str]]:
    """Per category its ImageNet class indices (``imagenet.label_map`` on ``imagenet.labels``),
    and the categories without an entry (not applicable: the prior never predicts them)."""
    from core.pretrained import imagenet_labels, label_map_columns

    columns, missing = label_map_columns(imagenet_labels(params.imagenet.labels), params.imagenet.label_map,
                                         categories)
    if missing:
        log.warning("imagenet.label_map has no entry for %s: not applicable to the ImageNet classifier "
                    "(never predicted by it)", ", ".join(missing))
    return columns, missing


def fit_settings(params: Params, spec: ClassifierMethod | ConjugateMethod | PretrainedMethod) -> LoopSettings:
    """The trainer's loop settings, with the method's own ``epochs`` and patience where set."""
    t = params.trainer
    patience = t.early_stopping_patience if spec.early_stopping_patience is None else spec.early_stopping_patience
    return LoopSettings(epochs=spec.epochs or t.epochs, batch_size=t.batch_size, lr=t.lr,
                        weight_decay=t.weight_decay, optimizer=t.optimizer, lr_schedule=t.lr_schedule,
                        patience=patience, checkpoint_every=t.checkpoint_every, seed=params.seed)


def train_torch(params: Params, method: str, spec: ClassifierMethod | ConjugateMethod | PretrainedMethod,
                categories: tuple[str, ...], plots_dir: Path) -> tuple[TorchPredictor, dict[str, Any]]:
    t = params.trainer
    device = pick_device(t.device)
    if t.threads:
        torch.set_num_threads(t.threads)
    torch.manual_seed(params.seed)
    pretrained: dict[str, Any] = {}
    backbone = None
    if isinstance(spec, PretrainedMethod):
        if spec.self_training is not None:
            selftrain.check_source(params)  # a wrong source fails before the training, not after
        backbone, pretrained = pretrained_backbone(spec)
        if backbone is None and spec.head == "ncm":
            log.warning("train: the ncm head needs a pre-trained backbone; %s learns a linear head instead", method)
            spec = spec.model_copy(update={"head": "linear"})
        # From scratch (no weights) the net trains at the trainer's size, not ImageNet's 224 px.
        size = spec.image_size or (int(pretrained["input_size"]) if backbone is not None else t.image_size)
        norm = PRETRAINED_NORM
    else:
        size, norm = t.image_size, (MEAN, STD)
    shots = spec.product_shots if isinstance(spec, PretrainedMethod) else None
    source = Path(params.paths.renders if shots is not None else params.paths.composites)
    if shots is not None:
        data = load_product_shots(source, categories, size, shots, stretch=spec.resize == "stretch",
                                  val=t.val_models, test=t.test_models, seed=params.seed)
    else:
        data = load_composites(source, categories, size, targets=isinstance(spec, ConjugateMethod),
                               val=t.val_models, test=t.test_models, seed=params.seed)
    categories = data.categories
    if isinstance(spec, PretrainedMethod) and not spec.hold_out_models:
        data.frame["split"] = "train"
        log.info("train@%s: hold_out_models false: all %d models train the head (no synthetic val/test split)",
                 method, data.frame["model_id"].nunique())
    prior: dict[str, Any] | None = None
    if isinstance(spec, PretrainedMethod) and spec.prior_weight > 0:
        if backbone is None:
            log.warning("train: prior_weight needs the ImageNet classifier of pre-trained weights; %s has none "
                        "and uses its head alone", method)
        else:
            columns, missing = imagenet_prior(params, categories)
            prior = {"columns": columns, "weight": spec.prior_weight, "not_applicable": missing}
    if backbone is not None:
        net = FeatureClassifier(backbone, len(categories), dropout=spec.dropout, head=spec.head,
                                prior_columns=prior and prior["columns"], prior_weight=spec.prior_weight)
    else:
        net = build_network(arch_of(spec, pretrained.get("padding", "tf")), len(categories))
    net = net.to(device)
    batches = Batches(data, norm, device)
    train_rows, val_rows, test_rows = (data.indices(s) for s in ("train", "val", "test"))
    if not len(train_rows):
        raise ValueError(f"{source}: no training images of {list(categories)} (every model is held out)")
    fingerprint = stable_hash(method, json.dumps(spec.model_dump(mode="json"), sort_keys=True),
                              json.dumps(t.model_dump(mode="json"), sort_keys=True), params.seed,
                              (source / "manifest.parquet").read_bytes())
    checkpoint = Path(params.paths.staging) / "train" / method / "checkpoint.pt"
    settings = fit_settings(params, spec)
    feats: torch.Tensor | None = None
    start = time.perf_counter()
    if isinstance(spec, PretrainedMethod):
        frozen = spec.mode == "frozen" and pretrained.get("weights") is not None
        if frozen:
            net.eval()
            all_rows = np.arange(len(data.frame))
            feats = torch.from_numpy(_features(net.embed, batches, all_rows, flip=False))
            flipped = torch.from_numpy(_features(net.embed, batches, all_rows, flip=True)) if t.hflip else feats
            if spec.head == "ncm":  # the class means of the training renders (and their mirror images)
                idx = torch.from_numpy(train_rows)
                labels = torch.from_numpy(data.labels[train_rows])
                net.head.set_means(torch.cat([feats[idx], flipped[idx]]), torch.cat([labels, labels]))
            step = HeadStep(net, batches, t, params.seed, cached=(feats, flipped))
            groups = [{"params": list(net.head.parameters())}]
        else:
            unfreeze = spec.unfreeze_after_steps if spec.mode == "unfreeze_after" and pretrained.get("weights") else None
            step = HeadStep(net, batches, t, params.seed, unfreeze_at=unfreeze)
            scale = spec.backbone_lr_scale if pretrained.get("weights") else 1.0
            groups = [{"params": list(net.backbone.parameters()), "lr_scale": scale},
                      {"params": list(net.head.parameters())}]
    else:
        sampler = TripletSampler(data, train_rows, spec.triplet.far_pose_deg, spec.triplet.other_class_negatives) \
            if spec.triplet.enabled else None
        step = NetStep(net, spec, batches, sampler, t, params.seed)
        groups = None

    def validate() -> float | None:
        if not len(val_rows):
            return None
        pred, _ = accuracy_on(net, batches, val_rows, feats)
        return float((pred == data.labels[val_rows]).mean())

    result = fit(net, train_rows, step, validate, settings, checkpoint=checkpoint, fingerprint=fingerprint,
                 param_groups=groups, desc=f"train@{method}")
    training_data = trained_on(spec)
    adapted: dict[str, Any] = {}
    if isinstance(spec, PretrainedMethod) and spec.self_training is not None:
        if feats is None:
            log.warning("train: self_training needs frozen pre-trained features; %s has none and stays "
                        "trained on synthetic data only", method)
        else:
            adapted = self_train(net, spec, params, batches, torch.cat([feats[train_rows], flipped[train_rows]]),
                                 np.concatenate([data.labels[train_rows]] * 2), size)
            training_data = adapted["training_data"]
            if net.prior is None and prior is not None:
                prior = None
    train_s = time.perf_counter() - start
    for empty in (checkpoint.parent, checkpoint.parent.parent):  # the checkpoint is gone: tidy staging
        if empty.is_dir() and not any(empty.iterdir()):
            empty.rmdir()
    net = net.cpu().eval()
    batches.device = torch.device("cpu")
    metrics = summarise(method, spec, params, data, result, net, train_s, device, size, pretrained)
    pred, desc = accuracy_on(net, batches, test_rows, None if feats is None else feats.cpu())
    if len(test_rows):
        truth = np.array(categories)[data.labels[test_rows]]
        guess = np.array(categories)[pred]
        metrics["synthetic_test_accuracy"] = round(M.accuracy(truth, guess), 4)
        metrics["synthetic_test_mean_class_accuracy"] = round(M.mean_class_accuracy(truth, guess, list(categories)), 4)
    write_training_plots(plots_dir, method, result, net, batches, data, test_rows, desc, trained_on(spec))
    arch = arch_of(spec, pretrained.get("padding", "tf"))
    if adapted:
        arch["head"] = "linear_normalized"
        metrics |= {"training_data": training_data, "self_training": adapted["summary"]}
    if prior is not None:
        arch["prior"] = {"columns": prior["columns"], "weight": net.prior_weight,
                         "imagenet_classes": int(net.prior.classifier.out_features)}
        metrics["prior_not_applicable"] = prior["not_applicable"]
    info = {"training_data": training_data, "method": describe(spec), "method_name": method,
            "params": spec.model_dump(mode="json"), "arch": arch,
            "input": {"size": size, "mean": norm[0], "std": norm[1],
                      "resize": spec.resize if isinstance(spec, PretrainedMethod) else "pad"},
            "label_set": params.trainer.label_set, "pretrained": pretrained or None,
            "train_composites": int(len(train_rows))}
    return TorchPredictor(net, categories, info), metrics


def _features(embed: Any, batches: Batches, rows: np.ndarray, flip: bool) -> np.ndarray:
    """Backbone descriptors of ``rows`` (computed once for a frozen backbone)."""
    from tqdm import tqdm

    out = []
    with torch.no_grad():
        for i in tqdm(range(0, len(rows), 64), desc=f"train: backbone features{' (flipped)' if flip else ''}",
                      unit="batch", mininterval=2.0):
            chunk = rows[i : i + 64]
            aug = Augment.flips_only(np.ones(len(chunk), bool)) if flip else None
            out.append(embed(batches.images(chunk, aug)).cpu().numpy())
    return np.concatenate(out)


def self_train(net: FeatureClassifier, spec: PretrainedMethod, params: Params, batches: Batches,
               comp_feats: torch.Tensor, comp_labels: np.ndarray, size: int) -> dict[str, Any]:
    """Adapt ``net`` to the unlabelled photos (core.selftrain): its own predictions on them
    (head + ImageNet prior, eval mode) are the pseudo-labels of a new head, which replaces the
    old one. Returns the training-data line and a summary for the metrics."""
    st = spec.self_training
    photos = selftrain.unlabelled_photos(params)
    log.info("train: self-training on %d unlabelled photos (%s)", len(photos.images), photos.source)
    predictor = TorchPredictor(net, tuple(range(net.num_classes)),
                               {"input": {"size": size, "mean": batches.mean, "std": batches.std,
                                          "resize": spec.resize}})
    net.eval()
    plain, mirrored, logits = [], [], []
    with torch.no_grad():
        for i in range(0, len(photos.images), 64):
            x = predictor.batch(photos.images[i : i + 64])
            desc = net.embed(x)
            plain.append(desc.numpy())
            logits.append(net.classify(desc).numpy())
            mirrored.append(net.embed(x.flip(3)).numpy())
    pseudo_one = np.concatenate(logits).argmax(1)  # a photo's label holds for its mirror image too
    w, b = selftrain.fit_student(np.concatenate(plain + mirrored), np.concatenate([pseudo_one, pseudo_one]),
                                 comp_feats.numpy(), comp_labels, net.num_classes, st)
    head = NormalizedLinear(net.embedding_dim, net.num_classes)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(w.T))
        head.bias.copy_(torch.from_numpy(b))
    net.head = head
    net.prior_weight = st.prior_weight
    if st.prior_weight == 0:
        net.prior = None
    counts = np.bincount(pseudo_one, minlength=net.num_classes)
    return {"training_data": selftrain.describe(len(photos.images), photos.source),
            "summary": {"photos": len(photos.images), "source": photos.source, "unreadable": len(photos.unreadable),
                        "pseudo_label_counts": counts.tolist(), **st.model_dump(mode="json")}}


def trained_on(spec: Any) -> str:
    """The training data of a method before any adaptation (self-training says its own)."""
    if isinstance(spec, ZeroShotMethod):
        return ZEROSHOT_DATA
    if isinstance(spec, PretrainedMethod) and spec.product_shots is not None:
        return PRODUCT_SHOTS_DATA
    return TRAINING_DATA


def describe(spec: Any) -> str:
    if isinstance(spec, ConjugateMethod):
        noise = {"adaptive": "coupled adaptive noise (eq. 9)", "fixed": "fixed noise", "none": "no noise"}[spec.noise]
        return (f"{spec.reconstructor.upper()} reconstructor + {spec.classifier} on [RGB, reconstruction]"
                f"{'' if spec.feedback else ' (no classifier feedback)'}, {noise}"
                f"{', multi-triplet' if spec.triplet.enabled else ''}")
    if isinstance(spec, ClassifierMethod):
        return f"{spec.classifier} on RGB{', multi-triplet' if spec.triplet.enabled else ''}"
    if isinstance(spec, PretrainedMethod):
        return (f"{spec.backbone} ImageNet features, {spec.mode}{', nearest class mean' if spec.head == 'ncm' else ''}"
                f"{', on product shots of the renders' if spec.product_shots is not None else ''}"
                f"{f' + ImageNet prior (weight {spec.prior_weight:g})' if spec.prior_weight > 0 else ''}"
                f"{', self-trained on unlabelled photos' if spec.self_training is not None else ''}")
    if isinstance(spec, ZeroShotMethod):
        return f"{spec.backbone} ImageNet classifier + label map, no CAD, no training (the reference)"
    return "HOG + colour grid, softmax regression (L-BFGS)"


def summarise(method: str, spec: Any, params: Params, data: TrainingData, result: FitResult, net: torch.nn.Module,
              train_s: float, device: torch.device, size: int, pretrained: dict[str, Any]) -> dict[str, Any]:
    split = data.frame["split"]
    out = {"method": method, "kind": spec.kind, "description": describe(spec), "training_data": trained_on(spec),
           "label_set": params.trainer.label_set, "classes": len(data.categories), "seed": params.seed,
           "image_size": size, "device": device.type, "parameters": int(sum(p.numel() for p in net.parameters())),
           "model_size_mb": model_size_mb(net), "train_time_s": round(train_s, 1), "steps": result.steps,
           "epochs_run": result.epochs_run, "best_epoch": result.best_epoch, "stopped_early": result.stopped_early,
           "resumed_from_step": result.resumed_from,
           "synthetic_val_accuracy": None if result.best_score is None else round(result.best_score, 4),
           **{f"{s}_composites": int((split == s).sum()) for s in ("train", "val", "test")}}
    if pretrained:
        out["pretrained_weights"] = pretrained.get("weights") or pretrained.get("source")
    return out


def write_training_plots(folder: Path, method: str, result: FitResult | None, net: torch.nn.Module | None,
                         batches: Batches | None, data: TrainingData, rows: np.ndarray, desc: np.ndarray,
                         trained: str = TRAINING_DATA) -> None:
    """history.csv (dvc plots), noise ratios over training (Fig. 8), the reconstruction
    grid (Fig. 9/10) and a PCA of the descriptors (Fig. 11) of the synthetic test split."""
    folder.mkdir(parents=True, exist_ok=True)
    title = f"{method}: trained on {trained}"
    if result is not None:
        history = pd.DataFrame(result.history)
        history.to_csv(folder / "history.csv", index=False, float_format="%.6g")
        plots.history_png(history, title, folder / "losses.png")
        if "r_rec" in history:
            plots.noise_ratios_png(history, title, folder / "noise_ratios.png")
    if len(rows) and len(desc):
        labels = np.array(data.categories)[data.labels[rows]]
        plots.pca_png(desc, labels, f"{method}: descriptors of the synthetic test split (PCA)", folder / "pca.png")
    if data.targets is not None and len(rows) and net is not None and batches is not None:
        pick = rows[np.linspace(0, len(rows) - 1, min(8, len(rows))).astype(int)]
        with torch.no_grad():
            recon = net(batches.images(pick)).recon.numpy().transpose(0, 2, 3, 1)
        plots.reconstruction_grid_png(data.images[pick], data.targets[pick], recon,
                                      np.array(data.categories)[data.labels[pick]], title,
                                      folder / "reconstructions.png")


def train_hog(params: Params, spec: HogSoftmaxMethod, categories: tuple[str, ...],
              plots_dir: Path) -> tuple[HogSoftmax, dict]:
    t = params.trainer
    data = load_composites(params.paths.composites, categories, spec.image_size, targets=False, val=t.val_models,
                           test=t.test_models, seed=params.seed)
    rows = data.indices("train")
    start = time.perf_counter()
    labels = np.array(data.categories)[data.labels]
    info = {"training_data": TRAINING_DATA, "method": describe(spec), "method_name": "baseline",
            "params": spec.model_dump(mode="json"), "train_composites": int(len(rows))}
    model = HogSoftmax.fit(list(data.images[rows]), labels[rows].tolist(), data.categories, size=spec.image_size,
                           l2=spec.l2, max_iter=spec.max_iter, info=info)
    split = data.frame["split"]
    out: dict[str, Any] = {"method": "baseline", "kind": spec.kind, "description": describe(spec),
                           "training_data": TRAINING_DATA, "label_set": t.label_set, "classes": len(data.categories),
                           "seed": params.seed, "image_size": spec.image_size, "device": "cpu",
                           "train_time_s": round(time.perf_counter() - start, 1),
                           **{f"{s}_composites": int((split == s).sum()) for s in ("train", "val", "test")}}
    for name in ("val", "test"):
        held = data.indices(name)
        if len(held):
            guess = np.array(data.categories)[model.predict_proba(list(data.images[held])).argmax(axis=1)]
            out[f"synthetic_{name}_accuracy"] = round(M.accuracy(labels[held], guess), 4)
            if name == "test":
                out["synthetic_test_mean_class_accuracy"] = round(
                    M.mean_class_accuracy(labels[held], guess, list(data.categories)), 4)
    w = model.w
    out["parameters"] = int(w.size + model.b.size)
    out["model_size_mb"] = round((w.nbytes + model.b.nbytes) / 1e6, 2)
    test = data.indices("test")
    desc = features(list(data.images[test]), spec.image_size) if len(test) else np.zeros((0, 1))
    write_training_plots(plots_dir, "baseline", None, None, None, data, test, desc)
    return model, out


def make_zeroshot(params: Params, method: str, spec: ZeroShotMethod, categories: tuple[str, ...],
                  plots_dir: Path) -> tuple[TorchPredictor, dict[str, Any]]:
    """The ImageNet classifier with the label map as a model folder; nothing is trained.
    Scored on the synthetic test split too, to show how ImageNet sees the renders."""
    from core.pretrained import BackboneNotFound, find_backbone

    try:
        backbone, pretrained = find_backbone(spec.backbone, spec.weights)
    except BackboneNotFound as exc:
        raise FileNotFoundError(f"methods.{method}: the ImageNet zero-shot reference needs the ImageNet "
                                f"weights ({exc}); point `weights` at them or leave {method} out of "
                                "train.methods") from None
    padding = "torch" if pretrained["source"] == "torchvision" else "tf"
    columns, missing = imagenet_prior(params, categories)
    if len(missing) == len(categories):
        raise ValueError(f"imagenet.label_map: no entry for any class of label set "
                         f"{params.trainer.label_set!r} ({', '.join(categories)})")
    net = FeatureClassifier(backbone, len(categories), head="none", prior_columns=columns).eval()
    arch = {"type": "pretrained", "backbone": spec.backbone, "padding": padding, "dropout": 0.0, "head": "none",
            "prior": {"columns": columns, "weight": 1.0, "imagenet_classes": int(net.prior.classifier.out_features)}}
    info = {"training_data": ZEROSHOT_DATA, "method": describe(spec), "method_name": method,
            "params": spec.model_dump(mode="json"), "arch": arch,
            "input": {"size": int(pretrained["input_size"]), "mean": PRETRAINED_NORM[0], "std": PRETRAINED_NORM[1],
                      "resize": spec.resize},
            "label_set": params.trainer.label_set, "pretrained": {**pretrained, "padding": padding},
            "not_applicable": missing, "label_map": {c: list(params.imagenet.label_map.get(c, ())) for c in categories}}
    predictor = TorchPredictor(net, categories, info)
    out: dict[str, Any] = {"method": method, "kind": spec.kind, "description": describe(spec),
                           "training_data": ZEROSHOT_DATA, "label_set": params.trainer.label_set,
                           "classes": len(categories), "seed": params.seed, "image_size": info["input"]["size"],
                           "device": "cpu", "parameters": int(sum(p.numel() for p in net.parameters())),
                           "model_size_mb": model_size_mb(net), "train_time_s": 0.0,
                           "pretrained_weights": pretrained["weights"], "not_applicable": missing}
    t = params.trainer
    data = load_composites(params.paths.composites, categories, params.composite.image_size, targets=False,
                           val=t.val_models, test=t.test_models, seed=params.seed)
    rows = data.indices("test")
    desc = np.zeros((0, 1), np.float32)
    if len(rows):
        proba = np.concatenate([predictor.predict_proba(list(data.images[rows[i:i + 64]]))
                                for i in range(0, len(rows), 64)])
        with torch.no_grad():
            desc = np.concatenate([net.embed(predictor.batch(list(data.images[rows[i:i + 64]]))).numpy()
                                   for i in range(0, len(rows), 64)])
        truth = np.array(data.categories)[data.labels[rows]]
        guess = np.array(categories)[proba.argmax(axis=1)]
        out["synthetic_test_accuracy"] = round(M.accuracy(truth, guess), 4)
        out["synthetic_test_mean_class_accuracy"] = round(
            M.mean_class_accuracy(truth, guess, list(data.categories)), 4)
    # The stage's plots output: the PCA of the ImageNet features of the synthetic test split.
    write_training_plots(plots_dir, method, None, None, None, data, rows, desc, trained_on(spec))
    return predictor, out


def run(params: Params, method: str) -> dict[str, Any]:
    if method not in params.methods:
        raise ValueError(f"params.yaml: method {method!r} is not defined under `methods` "
                         f"(defined: {sorted(params.methods)})")
    spec = params.methods[method]
    label_set = getattr(spec, "label_set", None)
    if label_set is not None:  # the method's own classes, e.g. pascal3d beside the ikea default
        params = params.model_copy(update={"trainer": params.trainer.model_copy(update={"label_set": label_set})})
    categories = LABEL_SETS[params.trainer.label_set]
    out_dir = Path(params.paths.models) / method
    plots_dir = Path(params.paths.plots) / "train" / method
    log.info("train@%s: %s; label set %s (%d classes); trained on %s", method, describe(spec),
             params.trainer.label_set, len(categories), trained_on(spec))
    if isinstance(spec, HogSoftmaxMethod):
        model, metrics = train_hog(params, spec, categories, plots_dir)
    elif isinstance(spec, ZeroShotMethod):
        model, metrics = make_zeroshot(params, method, spec, categories, plots_dir)
    else:
        model, metrics = train_torch(params, method, spec, categories, plots_dir)
    model.save(out_dir)
    path = write_metrics(Path(params.paths.metrics) / "train", method, metrics)
    log.info("train@%s: %s steps in %.1f s; synthetic test accuracy %s; wrote %s and %s", method,
             metrics.get("steps", "-"), metrics["train_time_s"], metrics.get("synthetic_test_accuracy", "n/a"),
             out_dir, path)
    return metrics


def main() -> None:
    stage_main("train", run, item="method")


if __name__ == "__main__":
    main()
