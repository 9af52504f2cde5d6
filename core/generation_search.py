"""Learning the generation parameters β (seed 002): hybrid gradient and black-box baselines.

β is every hand-set number of the data generator that a search may change, as one real
vector (:class:`BetaSpace`): per class the shape grammar's log-normal dimension jitter
and rule probabilities (``catalog.procedural.grammar``), the camera (viewpoint-prior
mixture, icosphere cap, distance range, close-ups, in-plane rotation), the light and the
composite augmentation strengths. Each component is a dotted ``params.yaml`` key with a
valid range; the search works on ``u = (β - lo) / (hi - lo)`` in ``[0, 1]^d`` so every
direction has the same scale, and clips to that box (seed 002 App. A.2).

``f(β, r)`` (:class:`Generator`) is the render + composite of one sample for seed ``r``:
a procedural model of class and index drawn from ``r``, built with β's grammar, seen from
a camera and under a light drawn from ``r`` with β's distributions, pasted on a
background with β's augmentations. The same ``r`` under two β gives corresponding samples
(common random numbers), which is what makes the finite differences of eq. 11 usable.

The network is the pipeline's frozen ImageNet MobileNetV2 with a linear softmax head
(:class:`SearchNet`): weights ``w`` are the head, trained by plain SGD and carried over
from one outer step to the next (eq. 12). ``L`` is the class-balanced cross-entropy of
the head on a validation set of real photos (IKEA ``val``, never ``test``).

Hybrid gradient (eq. 6-12, :func:`hybrid_gradient`): ``∂L/∂X`` by backpropagation through
``k`` unrolled SGD steps (functional weights, ``torch.func.grad``) and through the frozen
backbone to the pixels of each generated image; ``∂X/∂β`` by antithetic finite
differences along ``m`` Gaussian directions ``δ_j ~ N(0, σ²I)`` (eq. 10-11); their
product summed over the batch::

    ∂L/∂β ≈ Σ_i 1/m Σ_j <∂L/∂X_i, f(β+δ_j, r_i) - f(β-δ_j, r_i)> δ_j / (2σ²)

(``E[δ δᵀ] = σ² I``, so this is unbiased for a linear f). RMSprop on β, clipped to the box.

Baselines with the same budget per outer step, ``(2m + 1)·n`` generated samples
(:func:`run_method`): basic random search (Mania et al. 2018: the same antithetic
directions, but each side's ``L`` measured by training a copy of the network on
``f(β±δ_j)``), an evolution strategy (the parent and ``2m`` mutants each trained and
scored, the best kept with its weights), and fixed β (seed 002 Table 1: ten random β,
trained the same way without changing β).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core import compositing, geometry, rendering
from core.io import rng_for
from core.params import IKEA_CLASSES, CompositeParams, Params, apply_overrides, parse_params
from core.procedural import generate
from core.procedural.parts import GRAMMAR_RANGES

log = logging.getLogger("cad2real.generation_search")

GRAMMAR_DOCS: dict[str, str] = {
    "dim_log_mean": "log-normal mean of the factor on every continuous style draw (dimensions, angles)",
    "dim_log_std": "log-normal spread of that factor: proportions vary more",
    "option_logit": "logit shift of every optional part's probability (armrests, cushions, drawers)",
    "choice_temperature": "temperature on the grammar's rule choices: >1 flattens, <1 sharpens",
}
GRAMMAR_FIELDS: tuple[tuple[str, float, float, str], ...] = tuple(
    (name, lo, hi, GRAMMAR_DOCS[name]) for name, (lo, hi) in GRAMMAR_RANGES.items())

# (dotted params key, lo, hi, group, meaning). Ranges are what a search may try; the
# hand-set defaults of params.yaml lie inside them.
SCENE_COMPONENTS: tuple[tuple[str, float, float, str, str], ...] = (
    ("render.viewpoint_prior.fraction", 0.0, 1.0, "camera", "share of views from the PASCAL3D+ viewpoint prior (rest: icosphere)"),
    ("render.z_max", 0.2, 0.9, "camera", "highest camera on the icosphere, z / radius"),
    ("render.distance.lo", 1.0, 2.2, "camera", "nearest camera distance (model diagonals)"),
    ("render.distance.hi", 1.6, 4.0, "camera", "farthest camera distance"),
    ("render.closeup_fraction", 0.0, 0.5, "camera", "share of shifted-focal-point close-ups"),
    ("render.theta_sigma_deg", 0.0, 15.0, "camera", "in-plane rotation spread (degrees)"),
    ("render.light.ambient.lo", 0.0, 0.6, "light", "ambient light, low end"),
    ("render.light.ambient.hi", 0.1, 0.9, "light", "ambient light, high end"),
    ("render.light.diffuse.lo", 0.5, 5.0, "light", "directional light intensity, low end"),
    ("render.light.diffuse.hi", 1.0, 8.0, "light", "directional light intensity, high end"),
    ("render.light.specular.hi", 0.0, 1.0, "light", "specularity (1 - roughness), high end"),
    ("render.light.color_jitter", 0.0, 0.4, "light", "light colour jitter"),
    ("composite.object_scale.lo", 0.3, 0.9, "composite", "object size / image size, low end"),
    ("composite.object_scale.hi", 0.5, 1.0, "composite", "object size / image size, high end"),
    ("composite.object_noise_std.hi", 0.0, 0.1, "composite", "Gaussian noise on the object, high end"),
    ("composite.object_blur_sigma.hi", 0.0, 2.0, "composite", "object blur (pixels), high end"),
    ("composite.border_blur_sigma.hi", 0.0, 2.5, "composite", "border blur (pixels), high end"),
    ("composite.bg_channel_swap_p", 0.0, 1.0, "composite", "probability of a background channel swap"),
    ("composite.light_color_jitter", 0.0, 0.4, "composite", "object colour gain jitter"),
)


@dataclass(frozen=True)
class Component:
    """One dimension of β: the params key it sets, its valid range, its group and meaning."""

    key: str
    lo: float
    hi: float
    group: str
    doc: str


class BetaSpace:
    """β for the classes ``categories``: grammar components first (class by class), then
    camera, light and composite. ``u`` is β normalised to ``[0, 1]^d``."""

    def __init__(self, categories: Sequence[str]):
        self.categories = tuple(categories)
        comps = [Component(f"catalog.procedural.grammar.{c}.{name}", lo, hi, "shape", f"{c}: {doc}")
                 for c in self.categories for name, lo, hi, doc in GRAMMAR_FIELDS]
        comps += [Component(key, lo, hi, group, doc) for key, lo, hi, group, doc in SCENE_COMPONENTS]
        self.components = tuple(comps)
        self.lo = np.array([c.lo for c in comps])
        self.hi = np.array([c.hi for c in comps])

    @property
    def dim(self) -> int:
        return len(self.components)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(c.key for c in self.components)

    def clip(self, u: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(u, np.float64), 0.0, 1.0)

    def beta(self, u: np.ndarray) -> np.ndarray:
        """Normalised ``u`` -> β in the components' own units."""
        return self.lo + self.clip(u) * (self.hi - self.lo)

    def normalise(self, beta: np.ndarray) -> np.ndarray:
        return self.clip((np.asarray(beta, np.float64) - self.lo) / (self.hi - self.lo))

    def default(self, params: Params) -> np.ndarray:
        """The hand-set β of ``params`` (grammar entries absent: no change), normalised."""
        raw = params.model_dump(mode="json")
        values = []
        for c in self.components:
            if c.key.startswith("catalog.procedural.grammar."):
                category, name = c.key.split(".")[-2:]
                entry = raw["catalog"]["procedural"].get("grammar", {}).get(category)
                values.append(float(entry[name]) if entry else (1.0 if name == "choice_temperature" else 0.0))
            else:
                node: Any = raw
                for part in c.key.split("."):
                    node = node[part]
                values.append(float(node))
        return self.normalise(np.array(values))

    def random(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(0.0, 1.0, self.dim)

    def overrides(self, u: np.ndarray) -> dict[str, float]:
        """Dotted params keys -> values (``dvc exp run -S key=value``), rounded to 4
        significant digits; a ``lo``/``hi`` pair that crossed is put back in order."""
        values = {c.key: float(f"{v:.4g}") for c, v in zip(self.components, self.beta(u), strict=True)}
        for key in [k for k in values if k.endswith(".lo")]:
            hi = key[:-3] + ".hi"
            if hi in values and values[key] > values[hi]:
                values[key], values[hi] = values[hi], values[key]
        return values

    def params(self, base_raw: dict[str, Any], u: np.ndarray) -> Params:
        """The validated params of ``base_raw`` with β = ``u`` applied."""
        return parse_params(apply_overrides(base_raw, self.overrides(u)), source="beta")

    def describe(self) -> list[dict[str, Any]]:
        return [{"key": c.key, "lo": c.lo, "hi": c.hi, "group": c.group, "doc": c.doc} for c in self.components]


# --------------------------------------------------------------------------- f(β, r)


class Generator:
    """``f(β, r)``: render + composite of one procedural sample, in this process.

    Class ``categories[r % C]`` (balanced batches), model index drawn from ``r`` among the
    catalog's training indices, camera, light, background and augmentations from
    ``rng_for(seed, "generation_search", r)`` with β's distributions. Images are
    ``image_size``² uint8 RGB.
    """

    def __init__(self, base: Params, space: BetaSpace, image_size: int, seed: int):
        from core.backgrounds import load_backgrounds

        self.base_raw = base.model_dump(mode="json")
        self.space, self.size, self.seed = space, image_size, seed
        self.n_models = base.catalog.procedural.models_per_category - base.catalog.procedural.heldout_per_category
        rendering.select_platform(base.render.platform)
        self.renderer = rendering.Renderer(image_size, base.render.fov_deg)
        self.backgrounds = load_backgrounds(base.composite.backgrounds, base.seed)
        if not self.backgrounds:
            raise ValueError("generation_search: no backgrounds (composite.backgrounds gives none)")
        vp = base.render.viewpoint_prior  # as the render stage: a missing optional file = the icosphere
        found = vp.kind != "none" and (vp.required or Path(vp.path).is_file())
        self.prior = geometry.ViewpointPrior.from_params(vp) if found else None
        if vp.kind != "none" and not found:
            log.warning("skipped: viewpoint prior not found at %s; views stay on the icosphere", vp.path)
        self._params: dict[bytes, tuple[Params, CompositeParams]] = {}
        self.samples = 0  # f evaluations so far: the budget every method is charged in

    def close(self) -> None:
        self.renderer.close()

    def params_for(self, u: np.ndarray) -> tuple[Params, CompositeParams]:
        """The validated params of β = ``u``, and its composite section at ``image_size``."""
        key = np.round(self.space.clip(u), 10).tobytes()
        if key not in self._params:
            if len(self._params) > 256:
                self._params.clear()
            p = self.space.params(self.base_raw, u)
            self._params[key] = p, p.composite.model_copy(update={"image_size": self.size})
        return self._params[key]

    def sample(self, u: np.ndarray, r: int) -> tuple[np.ndarray, int]:
        p, cp = self.params_for(u)
        label = r % len(self.space.categories)
        category = self.space.categories[label]
        rng = rng_for(self.seed, "generation_search", int(r))
        index = int(rng.integers(self.n_models))
        model = generate(category, index, p.seed, part_colors=p.catalog.procedural.part_colors,
                         grammar=p.catalog.procedural.grammar_for(category))
        rp = p.render
        if self.prior is not None:
            self.prior.fraction = rp.viewpoint_prior.fraction
        directions = geometry.view_directions(rp, rng)
        view = geometry.sample_view(rp, 0, directions, rng, category=category, prior=self.prior)
        lights = [rendering.sample_light(rp.light, rng) for _ in range(rp.light.n_lights)]
        self.renderer.set_model(model.scene, category, model.style, n_lights=rp.light.n_lights)
        result = self.renderer.render(view, lights)
        for _ in range(4):  # an empty view (the object left the frame) is redrawn without close-up
            if np.count_nonzero(result.mask) >= 4:
                break
            view = geometry.sample_view(rp, 0, directions, rng, category=category, prior=self.prior,
                                        closeup_fraction=0.0)
            result = self.renderer.render(view, lights)
        layers = compositing.RenderLayers(rgb=result.rgb, mask=result.mask, semantic=result.semantic,
                                          depth=result.depth)
        background = self.backgrounds[int(rng.integers(len(self.backgrounds)))].image
        out = compositing.composite(layers, background, rng, cp)
        self.samples += 1
        return out.image, label

    def batch(self, u: np.ndarray, rs: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        images, labels = zip(*(self.sample(u, int(r)) for r in rs), strict=True)
        return np.stack(images), np.array(labels, np.int64)


# --------------------------------------------------------------------------- the network


Weights = tuple[torch.Tensor, torch.Tensor]


def head_logits(w: Weights, feats: torch.Tensor) -> torch.Tensor:
    return feats @ w[0].T + w[1]


def train_loss(w: Weights, feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(head_logits(w, feats), labels)


def unroll(w: Weights, feats: torch.Tensor, labels: torch.Tensor, steps: int, lr: float) -> Weights:
    """``steps`` plain SGD steps (eq. 6) on consecutive equal slices of the batch, written
    functionally so the result stays differentiable in ``feats`` (and ``w``)."""
    grad = torch.func.grad(train_loss)
    for chunk_f, chunk_y in zip(feats.chunk(steps), labels.chunk(steps), strict=True):
        g = grad(w, chunk_f, chunk_y)
        w = (w[0] - lr * g[0], w[1] - lr * g[1])
    return w


@dataclass
class ValSet:
    """Frozen features of the validation (or test) objects, their labels and the
    class-balancing weights of the loss."""

    feats: torch.Tensor
    labels: torch.Tensor
    name: str
    domain: str

    weights: torch.Tensor = field(init=False)  # per class: 1 / count, mean 1 over present classes

    def __post_init__(self) -> None:
        counts = torch.bincount(self.labels, minlength=int(self.labels.max()) + 1).to(self.feats.dtype)
        w = torch.where(counts > 0, 1.0 / counts.clamp(min=1), torch.zeros_like(counts))
        self.weights = w / w[counts > 0].mean()

    def loss(self, w: Weights) -> torch.Tensor:
        """Class-balanced cross-entropy: each class weighs the same, like the per-class mean."""
        return F.cross_entropy(head_logits(w, self.feats), self.labels, weight=self.weights)

    @torch.no_grad()
    def accuracy(self, w: Weights) -> tuple[float, float]:
        """(accuracy, per-class mean accuracy)."""
        pred = head_logits(w, self.feats).argmax(1)
        hit = (pred == self.labels).float()
        per_class = [float(hit[self.labels == c].mean()) for c in self.labels.unique()]
        return float(hit.mean()), float(np.mean(per_class))


FEATURE_SCALE = 8.0  # features are L2-normalised, then scaled: one SGD step size suits any backbone


class SearchNet:
    """The frozen backbone (any input size), pixels -> pooled features, L2-normalised and
    scaled by :data:`FEATURE_SCALE`, differentiable in the pixels; the head's weights live
    outside (:data:`Weights`)."""

    def __init__(self, backbone: torch.nn.Module, n_classes: int):
        self.net = backbone.eval().requires_grad_(False)
        self.n_classes = n_classes
        self.dim = int(backbone.embedding_dim)

    @staticmethod
    def to_input(images: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, 3, H, W) float in the backbone's (u - 128) / 128."""
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        return (x.to(torch.get_default_dtype()) - 128.0) / 128.0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net.embed(x), dim=1) * FEATURE_SCALE

    @torch.no_grad()
    def features_of(self, images: np.ndarray, batch: int = 64) -> torch.Tensor:
        return torch.cat([self.features(self.to_input(images[i:i + batch])) for i in range(0, len(images), batch)])

    def init_weights(self, seed: int) -> Weights:
        g = torch.Generator().manual_seed(seed)
        return (torch.randn(self.n_classes, self.dim, generator=g) * 0.01, torch.zeros(self.n_classes))


# --------------------------------------------------------------------------- the methods


@dataclass(frozen=True)
class Budget:
    """One outer step: ``k`` SGD steps on ``n = k * batch`` samples; ``m`` directions."""

    steps: int = 12  # outer steps T
    k: int = 4  # unrolled SGD steps per outer step
    batch: int = 8  # samples per SGD step
    directions: int = 4  # m
    sigma: float = 0.05  # δ ~ N(0, σ² I) in normalised units
    inner_lr: float = 0.2  # η of the head's SGD
    beta_lr: float = 0.02  # γ of RMSprop on normalised β
    rmsprop_decay: float = 0.9

    @property
    def n(self) -> int:
        return self.k * self.batch

    @property
    def samples_per_step(self) -> int:
        """Generated samples charged to every searching method per outer step."""
        return self.n * (2 * self.directions + 1)


class RMSprop:
    """RMSprop (Tieleman & Hinton 2012) on normalised β, clipped to ``[0, 1]^d``."""

    def __init__(self, dim: int, lr: float, decay: float = 0.9, eps: float = 1e-8):
        self.v = np.zeros(dim)
        self.lr, self.decay, self.eps = lr, decay, eps

    def step(self, u: np.ndarray, grad: np.ndarray) -> np.ndarray:
        self.v = self.decay * self.v + (1.0 - self.decay) * grad**2
        return np.clip(u - self.lr * grad / (np.sqrt(self.v) + self.eps), 0.0, 1.0)


def hybrid_gradient(net: SearchNet, w: Weights, images: np.ndarray, labels: np.ndarray,
                    perturbed: Callable[[np.ndarray], np.ndarray], deltas: np.ndarray, sigma: float,
                    val: ValSet, k: int, lr: float) -> tuple[np.ndarray, Weights, float]:
    """Eq. 7-11: (∂L/∂β estimate, the trained weights w^(k+1), L at them).

    ``perturbed(v)`` returns ``f(v, r_i)`` for the batch's seeds (same order as ``images``);
    ``deltas`` (m, d) are the directions, drawn from N(0, σ² I)."""
    x = net.to_input(images).requires_grad_(True)
    w_new = unroll(w, net.features(x), torch.from_numpy(labels), k, lr)
    loss = val.loss(w_new)
    (dldx,) = torch.autograd.grad(loss, x)
    grad = np.zeros(deltas.shape[1])
    for delta in deltas:
        dx = net.to_input(perturbed(delta)) - net.to_input(perturbed(-delta))
        grad += float((dldx * dx).sum()) * delta
    grad /= 2.0 * sigma**2 * len(deltas)
    return grad, (w_new[0].detach(), w_new[1].detach()), float(loss.detach())


@dataclass
class Trace:
    """One method's run: per outer step the validation loss and accuracy of the carried
    network, β (normalised), samples generated, CPU and wall seconds so far."""

    method: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    u: np.ndarray | None = None

    def log(self, step: int, loss: float, acc: tuple[float, float], u: np.ndarray, samples: int,
            cpu: float, wall: float) -> None:
        self.rows.append({"step": step, "val_loss": loss, "val_accuracy": acc[0], "val_mean_class_accuracy": acc[1],
                          "samples": samples, "cpu_s": cpu, "wall_s": wall, "u": u.copy()})
        log.info("generation_search %-14s step %2d  L %.4f  val acc %.3f (per-class %.3f)  %d samples  "
                 "cpu %.0f s  wall %.0f s", self.method, step, loss, acc[0], acc[1], samples, cpu, wall)


def _seeds(seed: int, step: int, n: int) -> list[int]:
    """Seeds r of one outer step: fresh data every step, the same for every method."""
    rng = rng_for(seed, "generation_search_seeds", step)
    return [int(v) for v in rng.integers(0, 2**31 - 1, n)]


def _train_on(net: SearchNet, gen: Generator, w: Weights, u: np.ndarray, rs: Sequence[int], b: Budget) -> Weights:
    images, labels = gen.batch(u, rs)
    with torch.no_grad():
        feats = net.features(net.to_input(images))
    with torch.enable_grad():
        w_new = unroll(w, feats, torch.from_numpy(labels), b.k, b.inner_lr)
    return (w_new[0].detach(), w_new[1].detach())


def run_method(method: str, gen: Generator, net: SearchNet, val: ValSet, u0: np.ndarray, b: Budget,
               seed: int, progress: Callable[[], None] | None = None) -> Trace:
    """One method for ``b.steps`` outer steps from β = ``u0`` and fresh head weights.

    method: ``hybrid`` | ``random_search`` | ``evolution`` | ``fixed``.
    """
    rng = rng_for(seed, "generation_search_directions", method)
    trace = Trace(method)
    u, w = gen.space.clip(u0), net.init_weights(seed)
    opt = RMSprop(gen.space.dim, b.beta_lr, b.rmsprop_decay)
    samples0, cpu0, wall0 = gen.samples, time.process_time(), time.perf_counter()
    with torch.no_grad():
        trace.log(0, float(val.loss(w)), val.accuracy(w), u, 0, 0.0, 0.0)
    for t in range(1, b.steps + 1):
        rs = _seeds(seed, t, b.n)
        if method == "fixed":
            w = _train_on(net, gen, w, u, rs, b)
        elif method == "hybrid":
            deltas = rng.normal(0.0, b.sigma, (b.directions, gen.space.dim))
            images, labels = gen.batch(u, rs)
            grad, w, _ = hybrid_gradient(net, w, images, labels, lambda d: gen.batch(u + d, rs)[0], deltas,
                                         b.sigma, val, b.k, b.inner_lr)
            u = opt.step(u, grad)
        elif method == "random_search":
            deltas = rng.normal(0.0, b.sigma, (b.directions, gen.space.dim))
            grad = np.zeros(gen.space.dim)
            for delta in deltas:
                with torch.no_grad():
                    lp = float(val.loss(_train_on(net, gen, w, u + delta, rs, b)))
                    lm = float(val.loss(_train_on(net, gen, w, u - delta, rs, b)))
                grad += (lp - lm) * delta
            grad /= 2.0 * b.sigma**2 * len(deltas)
            u = opt.step(u, grad)
            w = _train_on(net, gen, w, u, rs, b)
        elif method == "evolution":
            candidates = [u] + [gen.space.clip(u + rng.normal(0.0, b.sigma, gen.space.dim))
                                for _ in range(2 * b.directions)]
            trained = [_train_on(net, gen, w, c, rs, b) for c in candidates]
            with torch.no_grad():
                losses = [float(val.loss(wc)) for wc in trained]
            best = int(np.argmin(losses))
            u, w = candidates[best], trained[best]
        else:
            raise ValueError(f"unknown generation search method {method!r}: hybrid, random_search, evolution, fixed")
        with torch.no_grad():
            trace.log(t, float(val.loss(w)), val.accuracy(w), u, gen.samples - samples0,
                      time.process_time() - cpu0, time.perf_counter() - wall0)
        if progress is not None:
            progress()
    trace.u = u
    return trace


def fit_ncm(feats: torch.Tensor, labels: torch.Tensor, n_classes: int) -> Weights:
    """Nearest class mean on the cosine (the pipeline's default frozen-feature head): the
    final model of one β, fitted from scratch for the test comparison, nothing to tune.
    Logits are ``FEATURE_SCALE * cos`` to the unit class means."""
    means = torch.stack([F.normalize(feats[labels == c].mean(0), dim=0) if (labels == c).any()
                         else torch.zeros(feats.shape[1]) for c in range(n_classes)])
    return means, torch.zeros(n_classes)


def fixed_ranking(traces: Sequence[Trace]) -> dict[str, Trace]:
    """Best, median and worst of the fixed-β runs by their last validation loss (Table 1)."""
    order = sorted(traces, key=lambda tr: tr.rows[-1]["val_loss"])
    return {"best": order[0], "median": order[(len(order) - 1) // 2], "worst": order[-1]}


__all__ = ["BetaSpace", "Budget", "Component", "Generator", "IKEA_CLASSES", "RMSprop", "SearchNet", "Trace",
           "ValSet", "fit_ncm", "fixed_ranking", "hybrid_gradient", "run_method", "train_loss", "unroll"]
