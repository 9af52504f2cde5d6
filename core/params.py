"""The one typed schema of ``params.yaml``.

Every section is a frozen pydantic model with ``extra="forbid"``: an unknown or mistyped
key fails at load with its dotted name (``render.views_per_modle: Extra inputs are not
permitted``). Stages receive the smallest section they need, never the root.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

if TYPE_CHECKING:
    from core.procedural.parts import Grammar

PASCAL3D_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "boat", "bottle", "bus", "car",
    "chair", "diningtable", "motorbike", "sofa", "train", "tvmonitor",
)
# IKEA classes not among PASCAL3D+'s (chair, sofa and table=diningtable are shared).
IKEA_EXTRA_CLASSES: tuple[str, ...] = ("bed", "bookcase", "desk")
ALL_CLASSES: tuple[str, ...] = PASCAL3D_CLASSES + IKEA_EXTRA_CLASSES
# The IKEA object dataset's label set in our names (its table = diningtable, bookshelf = bookcase).
IKEA_CLASSES: tuple[str, ...] = ("bed", "bookcase", "chair", "desk", "diningtable", "sofa")

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0.0)]
NonNegInt = Annotated[int, Field(ge=0)]


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Range(Section):
    """A closed interval ``[lo, hi]`` sampled uniformly unless said otherwise."""

    lo: float
    hi: float

    @model_validator(mode="after")
    def _ordered(self) -> "Range":
        if self.lo > self.hi:
            raise ValueError(f"lo ({self.lo}) must be <= hi ({self.hi})")
        return self


class PathsParams(Section):
    """Every output location, written once and used in dvc.yaml as ``${paths.x}``."""

    catalog: str = "data/catalog"
    renders: str = "data/renders"
    composites: str = "data/composites"
    adaptation_pairs: str = "data/adaptation_pairs"
    proxy_real: str = "data/proxy_real"
    proxy_detection: str = "data/proxy_detection"  # SYNTHETIC multi-object detection set
    staging: str = "data/.staging"
    metrics: str = "metrics"  # small JSON summaries per stage, tracked by git (dvc metrics show)
    models: str = "data/models"  # trained predictors, one folder each (predictor.json + weights)
    evaluation: str = "data/evaluation"  # per-object predictions of the evaluate stage
    plots: str = "plots"  # evaluation plots (PNG + CSV for `dvc plots`), tracked by git
    reports: str = "reports"  # human-readable reports, tracked by git
    view_features: str = "data/view_features"  # the view database: features of every rendered view
    adaptation: str = "data/adaptation"  # trained feature adaptations φ, one file per variant
    exemplar: str = "data/exemplar"  # exemplar detections and the calibration of the default detector
    retrieval: str = "data/retrieval"  # best-matching rendered views of every query
    viewpoint_features: str = "data/viewpoint_features"  # training boxes of the viewpoint methods
    viewpoint: str = "data/viewpoint"  # trained viewpoint methods, one predictor folder each
    viewpoint_eval: str = "data/viewpoint_eval"  # their predictions on the evaluation sets
    generation: str = "data/generation"  # the searched generation parameters β (beta.yaml)


class GrammarParams(Section):
    """One class's shape-grammar parameters β (seed 002), ``core.procedural.parts.Grammar``;
    the defaults change nothing."""

    # Every continuous style draw times exp(dim_log_mean + dim_log_std * z), z ~ N(0, 1).
    dim_log_mean: Annotated[float, Field(ge=-0.5, le=0.5)] = 0.0
    dim_log_std: Annotated[float, Field(ge=0.0, le=0.5)] = 0.0
    # Added to the logit of every optional part's probability (coin).
    option_logit: Annotated[float, Field(ge=-4.0, le=4.0)] = 0.0
    # Categorical choices drawn with probabilities ∝ p ** (1 / T).
    choice_temperature: Annotated[float, Field(ge=0.25, le=4.0)] = 1.0


class ProceduralParams(Section):
    enabled: bool = True
    categories: tuple[str, ...] = ALL_CLASSES
    models_per_category: PositiveInt = 8
    # The last ``heldout_per_category`` models of each class are never rendered for
    # training; the proxy-real set uses them (held-out instances, SPEC §3).
    heldout_per_category: Annotated[int, Field(ge=0)] = 2
    part_colors: bool = True
    photo_textures: bool = False
    # Per-class shape-grammar parameters; a class without an entry keeps the default meshes.
    grammar: dict[str, GrammarParams] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> "ProceduralParams":
        unknown = sorted(set(self.categories) - set(ALL_CLASSES))
        if unknown:
            raise ValueError(f"unknown categories {unknown}; known: {list(ALL_CLASSES)}")
        unknown = sorted(set(self.grammar) - set(ALL_CLASSES))
        if unknown:
            raise ValueError(f"grammar: unknown categories {unknown}; known: {list(ALL_CLASSES)}")
        if self.heldout_per_category >= self.models_per_category:
            raise ValueError(
                f"heldout_per_category ({self.heldout_per_category}) must be smaller than "
                f"models_per_category ({self.models_per_category})"
            )
        return self

    def grammar_for(self, category: str) -> Grammar | None:
        """The ``core.procedural.parts.Grammar`` of ``category``, or None when it has no entry
        (the default catalog's meshes)."""
        entry = self.grammar.get(category)
        if entry is None:
            return None
        from core.procedural.parts import Grammar

        return Grammar(**entry.model_dump())


SourceKind = Literal["pascal3d", "objectnet3d", "shapenet_v1", "shapenet_v2", "modelnet", "folder", "sweethome3d"]


class CatalogSource(Section):
    """A library of 3D models on disk, imported into the canonical frame.

    ``root`` layouts: pascal3d/objectnet3d ``<root>/CAD/<class>/NN.off``; shapenet_v1
    ``<root>/<synset>/<id>/model.obj``; shapenet_v2 ``<root>/<synset>/<id>/models/
    model_normalized.obj``; modelnet ``<root>/<class>/{train,test}/*.off``; folder: any
    ``*.obj|*.glb|*.gltf|*.ply|*.stl|*.off`` below ``root`` with ``class_map`` mapping a
    file's relative path (glob patterns allowed) or its first folder to a category.
    """

    kind: SourceKind
    root: str
    # Rename source classes (``bookshelf: bookcase``); for ``folder`` the glob → class map.
    class_map: dict[str, str] = Field(default_factory=dict)
    categories: tuple[str, ...] | None = None  # keep only these (after class_map)
    license: str = "see source"
    # A missing root is an error when required, else a logged "skipped: not found" line.
    required: bool = False
    # Axis convention override (e.g. "y_up_front_neg_z"); None = the source's documented one.
    axes: str | None = None
    max_models_per_category: PositiveInt | None = None


SHARED_DATA = "../shared/data"  # where the real data lives on our machines (optional)


class CatalogParams(Section):
    procedural: ProceduralParams = ProceduralParams()
    # The real CAD libraries of ../shared/data; each is skipped with a line when absent.
    sources: tuple[CatalogSource, ...] = (
        CatalogSource(kind="pascal3d", root=f"{SHARED_DATA}/pascal3d_cad", license="PASCAL3D+ research use"),
        CatalogSource(kind="objectnet3d", root=f"{SHARED_DATA}/objectnet3d_cad", class_map={"bookshelf": "bookcase"},
                      license="ObjectNet3D research use"),
        CatalogSource(kind="shapenet_v1", root=f"{SHARED_DATA}/shapenet_samples", license="ShapeNet terms of use"),
    )
    min_faces: PositiveInt = 4
    max_faces: PositiveInt = 500_000


class LightParams(Section):
    """Phong-style light perturbation (seed 003 §3.1) mapped onto pyrender's PBR lights."""

    ambient: Range = Range(lo=0.15, hi=0.45)
    diffuse: Range = Range(lo=2.0, hi=5.0)  # directional-light intensity
    specular: Range = Range(lo=0.0, hi=0.5)  # 1 - roughness of the material
    color_jitter: NonNegFloat = 0.1  # per-channel multiplicative jitter of the light colour
    n_lights: Annotated[int, Field(ge=1, le=8)] = 1
    elevation_deg: Range = Range(lo=10.0, hi=80.0)


class ViewpointPriorParams(Section):
    """Render-for-CNN style viewpoints: per-class kernel density of real annotations."""

    # pascal3d (default): the real annotations' viewpoints; with the SUN backgrounds it
    # lifted the frozen-NCM IKEA val per-class mean from 0.37 to 0.46 (BENCHMARKS.md).
    kind: Literal["none", "pascal3d"] = "pascal3d"
    # PASCAL3D+ viewpoint csv (``path,x0,y0,x1,y1,_,azimuth,elevation,theta``)
    path: str = "../shared/data/pascal3d_annotations/train.csv"
    # Fraction of views drawn from the prior; the rest stay on the cut icosphere.
    fraction: Probability = 1.0
    jitter_deg: NonNegFloat = 3.0  # Gaussian kernel width of the density estimate
    # A missing annotation file is an error when required, else a "skipped" line and the icosphere.
    required: bool = False
    # Classes without annotations borrow another class's distribution (an assumption,
    # logged); a class neither annotated nor mapped keeps the icosphere.
    class_map: dict[str, str] = Field(
        default_factory=lambda: {"bed": "sofa", "desk": "diningtable", "bookcase": "tvmonitor"}
    )


class RenderParams(Section):
    platform: Literal["auto", "egl", "osmesa"] = "auto"
    workers: PositiveInt = 2
    image_size: Annotated[int, Field(ge=16, le=2048)] = 128
    fov_deg: Annotated[float, Field(gt=5.0, lt=120.0)] = 35.0
    views_per_model: PositiveInt = 24
    # Cameras on a recursively subdivided icosahedron (seed 000 §III, Fig. 2): level 0 =
    # 12 vertices, 1 = 42, 2 = 162, 3 = 642; caps cut to z/R in [z_min, z_max].
    icosphere_level: Annotated[int, Field(ge=0, le=5)] = 2
    z_min: Annotated[float, Field(ge=-1.0, le=1.0)] = -0.1
    z_max: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.6
    azimuth_jitter_deg: NonNegFloat = 5.0  # so views are not all on the same vertices
    theta_sigma_deg: NonNegFloat = 5.0  # in-plane rotation ~ N(0, sigma), clipped at 3 sigma
    # Camera distance in units of the model's bounding-box diagonal, log-uniform.
    distance: Range = Range(lo=1.3, hi=2.6)
    focal_jitter: NonNegFloat = 0.04  # focal point uniform in a cube of this half-size
    # "Shifted focal point" close-ups (seed 000 §III): F' = F + shift * (C - P_axis).
    closeup_fraction: Probability = 0.15
    closeup_shift: NonNegFloat = 0.2
    closeup_distance_scale: Annotated[float, Field(gt=0.0, le=1.0)] = 0.7
    style: Literal["grey", "part_colors", "textured"] = "part_colors"
    light: LightParams = LightParams()
    viewpoint_prior: ViewpointPriorParams = ViewpointPriorParams()

    @model_validator(mode="after")
    def _caps(self) -> "RenderParams":
        if self.z_min >= self.z_max:
            raise ValueError(f"z_min ({self.z_min}) must be < z_max ({self.z_max})")
        return self


class BackgroundParams(Section):
    skimage: bool = True  # the real photographs shipped inside scikit-image
    procedural: Annotated[int, Field(ge=0)] = 24  # number of procedural clutter images
    # A folder of the user's photos (jpg/png), e.g. SUN2012: scenes, not labelled objects.
    dir: str | None = f"{SHARED_DATA}/backgrounds/sun2012"
    # A missing ``dir`` is an error when required, else a logged "skipped: not found" line.
    dir_required: bool = False
    size: Annotated[int, Field(ge=32)] = 256  # backgrounds are stored at this square size


class CompositeParams(Section):
    workers: PositiveInt = 2
    image_size: Annotated[int, Field(ge=16, le=2048)] = 128
    per_render: PositiveInt = 1
    backgrounds: BackgroundParams = BackgroundParams()
    bg_channel_swap_p: Probability = 0.5
    bg_flip_p: Probability = 0.5
    bg_rot90_p: Probability = 0.5
    bg_crop_scale: Range = Range(lo=0.4, hi=1.0)  # side of the crop / side of the background
    object_scale: Range = Range(lo=0.55, hi=0.95)  # longest bbox side / image side
    object_noise_std: Range = Range(lo=0.0, hi=0.04)  # Gaussian noise on the object, [0,1] units
    object_blur_sigma: Range = Range(lo=0.0, hi=0.8)  # pixels, object only
    border_blur_sigma: Range = Range(lo=0.3, hi=1.2)  # pixels, object + adjacent background
    light_color_jitter: NonNegFloat = 0.1
    # Blending modes and their probabilities (normalised): alpha, blurred alpha, Poisson.
    blend: dict[Literal["alpha", "blurred_alpha", "poisson"], NonNegFloat] = Field(
        default_factory=lambda: {"alpha": 0.3, "blurred_alpha": 0.7, "poisson": 0.0}
    )
    adaptation_pairs: bool = True

    @model_validator(mode="after")
    def _blend(self) -> "CompositeParams":
        if not self.blend or sum(self.blend.values()) <= 0:
            raise ValueError("blend needs at least one mode with a positive probability")
        return self


class ProxyRealParams(Section):
    """The synthetic proxy-real evaluation set (SPEC §3). It is *not* real data."""

    images_per_model: PositiveInt = 8
    image_size: Annotated[int, Field(ge=16, le=2048)] = 128
    n_lights: Range = Range(lo=2, hi=4)
    light_color_jitter: NonNegFloat = 0.35
    shadows: bool = True  # directional-light self-shadowing (pyrender), unlike training renders
    closeup_fraction: Probability = 0.3
    truncation_p: Probability = 0.25
    occluder_p: Probability = 0.4
    sensor_noise_std: Range = Range(lo=0.005, hi=0.03)
    jpeg_quality: Range = Range(lo=35, hi=90)
    motion_blur_p: Probability = 0.3
    # Real photos for backgrounds; the user folder when set, else scikit-image's photos
    # that the composite stage does not use.
    backgrounds_dir: str | None = None


class ProxyDetectionParams(Section):
    """The synthetic multi-object detection set (seed 004 §4.4): held-out models in the
    proxy-real style, several per image. It is *not* real data. Lights, shadows, photos,
    sensor noise, motion blur and JPEG come from ``proxy_real``."""

    images: PositiveInt = 80
    image_size: Annotated[int, Field(ge=32, le=2048)] = 256
    objects: Range = Range(lo=2, hi=4)  # objects per image, whole numbers
    object_scale: Range = Range(lo=0.25, hi=0.55)  # longest box side / image side
    # A placement whose box IoU with an earlier object's exceeds this is redrawn.
    max_overlap_iou: Probability = 0.3

    @model_validator(mode="after")
    def _ranges(self) -> "ProxyDetectionParams":
        lo, hi = self.objects.lo, self.objects.hi
        if lo < 1 or not float(lo).is_integer() or not float(hi).is_integer():
            raise ValueError(f"objects: whole numbers >= 1 expected, got lo={lo}, hi={hi}")
        if not 0 < self.object_scale.lo <= self.object_scale.hi <= 1:
            raise ValueError(f"object_scale: 0 < lo <= hi <= 1 expected, got {self.object_scale}")
        return self


LabelSet = Literal["ikea", "pascal3d", "all"]
LABEL_SETS: dict[str, tuple[str, ...]] = {"ikea": IKEA_CLASSES, "pascal3d": PASCAL3D_CLASSES, "all": ALL_CLASSES}


class TrainerParams(Section):
    """The one training loop every torch method shares (core/training.py)."""

    # The classes learned: the 6 IKEA classes (the headline real-photo test), the 12
    # PASCAL3D+ classes, or all 15 of the catalog. Composites of other classes are unused.
    label_set: LabelSet = "ikea"
    image_size: Annotated[int, Field(ge=32, le=512)] = 64  # from-scratch nets; multiple of 16
    epochs: PositiveInt = 15
    batch_size: Annotated[int, Field(ge=2)] = 32
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: Annotated[float, Field(gt=0.0)] = 1e-3
    weight_decay: NonNegFloat = 1e-4
    lr_schedule: Literal["cosine", "step", "constant"] = "cosine"
    # Stop when the synthetic validation accuracy has not improved for this many epochs
    # (0 = never); the best epoch's weights are kept.
    early_stopping_patience: Annotated[int, Field(ge=0)] = 4
    checkpoint_every: PositiveInt = 25  # steps between checkpoints (resume after a crash)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when present
    # Whole models (never single views) held out per class: validation picks the epoch,
    # test is the "synthetic test split" of RESULTS.md.
    val_models: Annotated[float, Field(ge=0.0, lt=0.5)] = 0.1
    test_models: Annotated[float, Field(ge=0.0, lt=0.5)] = 0.15
    hflip: bool = True  # horizontal flips of composite and target (class-preserving)
    # On-the-fly augmentation of the training batches (image and semantic target alike):
    # a random square crop of this fraction of the side, resized back; per-channel gain
    # and brightness jitter of this strength; grey-scale with this probability.
    crop_scale: Range = Range(lo=0.75, hi=1.0)
    color_jitter: Probability = 0.3
    grayscale_p: Probability = 0.1
    threads: Annotated[int, Field(ge=0)] = 0  # torch intra-op threads; 0 = torch's default

    @model_validator(mode="after")
    def _size(self) -> "TrainerParams":
        if self.image_size % 16:
            raise ValueError(f"image_size must be a multiple of 16 (the reconstructors downsample 16x), "
                             f"got {self.image_size}")
        return self


class HogSoftmaxMethod(Section):
    """The wiring baseline: HOG + colour features of composites, softmax regression."""

    kind: Literal["hog_softmax"] = "hog_softmax"
    image_size: Annotated[int, Field(ge=16, le=512)] = 64
    l2: NonNegFloat = 0.3  # weight decay of the softmax regression (features standardised)
    max_iter: PositiveInt = 200  # L-BFGS iterations


class TripletParams(Section):
    """Pose-based multi-triplet sets (seed 000 eq. 5-6): reference, pose-nearest positive,
    a far-pose negative of the same class and ``other_class_negatives`` of other classes."""

    enabled: bool = True
    weight: NonNegFloat = 1.0
    margin: Annotated[float, Field(gt=0.0)] = 1.0
    pairwise: bool = True  # the L_pair term of eq. 5
    sets_per_batch: Annotated[int, Field(ge=1)] = 8
    far_pose_deg: Annotated[float, Field(ge=0.0, le=180.0)] = 60.0  # same-class negative: at least this far
    other_class_negatives: Annotated[int, Field(ge=1)] = 2


class ClassifierMethod(Section):
    """A classifier on RGB alone (ZigzagNet, SqueezeNet 1.1, AlexNet-style)."""

    kind: Literal["classifier"] = "classifier"
    classifier: Literal["zigzagnet", "squeezenet", "alexnet"] = "zigzagnet"
    width: Annotated[float, Field(gt=0.0, le=4.0)] = 1.0
    dropout: Probability = 0.5
    triplet: TripletParams = TripletParams(enabled=False)
    epochs: PositiveInt | None = None  # None: trainer.epochs
    early_stopping_patience: Annotated[int, Field(ge=0)] | None = None  # None: trainer's


class ConjugateMethod(Section):
    """GM-CML and its reconstruction baselines (seed 000 §IV-VII): reconstructor -> 3
    semantic channels, classifier on [RGB, reconstruction], eq. 11 loss."""

    kind: Literal["conjugate"] = "conjugate"
    reconstructor: Literal["vc", "fcn", "deconvnet"] = "vc"
    rec_width: Annotated[int, Field(ge=4)] = 16
    latent_channels: Annotated[int, Field(ge=1)] = 16
    classifier: Literal["zigzagnet", "squeezenet", "alexnet"] = "zigzagnet"
    width: Annotated[float, Field(gt=0.0, le=4.0)] = 1.0
    dropout: Probability = 0.5
    feedback: bool = True  # False: the classifier's gradient does not reach the reconstructor (VC)
    # adaptive: the coupled ratios of eq. 9 per batch (GM-CML); fixed: constant ratios (GM-ML)
    noise: Literal["adaptive", "fixed", "none"] = "adaptive"
    alpha: NonNegFloat = 0.25
    beta: NonNegFloat = 2.0
    m_noise: NonNegFloat = 1e-6
    fixed_r_rec: Probability = 0.1
    fixed_r_cls: Probability = 0.3
    # null: latent elements / image elements, i.e. the balance of the sum forms of eq. 12
    # and eq. 14 (the losses are per-element means here); a number overrides it.
    kl_weight: NonNegFloat | None = None
    recon_weight: NonNegFloat = 10.0  # per-pixel squared error x this, next to the softmax loss
    softmax_weight: NonNegFloat = 1.0
    triplet: TripletParams = TripletParams()
    epochs: PositiveInt | None = None
    early_stopping_patience: Annotated[int, Field(ge=0)] | None = None  # None: trainer's


class SelfTrainingParams(Section):
    """Self-training on unlabelled real photos (``adaptation.unlabelled_*``): the method's
    model (head + ImageNet prior) pseudo-labels the photos, then a softmax head learns the
    photos' pseudo-labels (each pseudo-class weighing the same) beside the composites'
    true labels; it replaces the head. The photos' labels are never read."""

    composite_weight: NonNegFloat = 0.3  # the composites' total weight next to the photos' (1)
    c: Annotated[float, Field(gt=0.0)] = 0.3  # inverse L2 strength (scikit-learn's C)
    prior_weight: NonNegFloat = 0.0  # the ImageNet prior added to the new head at inference


class ProductShotParams(Section):
    """Training images framed like product photos: each render of ``paths.renders`` cropped to
    its object's box (plus ``margin`` of the box on each side) on a plain background of one
    grey level drawn per image from ``background``, instead of the domain-randomised
    composites. Made in memory by ``train@`` (nothing written); seeded per render."""

    margin: Annotated[float, Field(ge=0.0, le=1.0)] = 0.08
    background: Range = Range(lo=200.0, hi=255.0)  # grey level, 0-255


class PretrainedMethod(Section):
    """ImageNet features (seed 003): a backbone from a local weights file, head on renders."""

    kind: Literal["pretrained"] = "pretrained"
    backbone: Literal["mobilenet_v2", "mobilenet_v1_025"] = "mobilenet_v2"
    # A .tflite (../shared/data/weights/coral) or torchvision .pth file; null or missing:
    # the torch hub cache; nothing found: a "no pre-trained weights" line and from scratch.
    weights: str | None = f"{SHARED_DATA}/weights/coral/mobilenet_v2_1.0_224_quant.tflite"
    # frozen: features computed once, only the head learns; finetune: everything learns;
    # unfreeze_after: frozen for ``unfreeze_after_steps`` steps, then everything.
    mode: Literal["frozen", "finetune", "unfreeze_after"] = "frozen"
    unfreeze_after_steps: Annotated[int, Field(ge=0)] = 200
    image_size: Annotated[int, Field(ge=32, le=512)] | None = None  # None: the backbone's own
    backbone_lr_scale: Annotated[float, Field(gt=0.0)] = 0.1  # fine-tuning: backbone lr = lr * this
    dropout: Probability = 0.2
    # linear: dropout + linear layer trained with softmax; ncm: nearest class mean on the
    # cosine similarity (frozen mode: the means of the renders' features, only a softmax
    # temperature is trained), which weighs every class alike.
    head: Literal["linear", "ncm"] = "linear"
    # Logit fusion with the ImageNet prior at inference: logits = head + prior_weight *
    # log P_imagenet(class) (imagenet.label_map). The head trains on renders alone; 0 = off.
    prior_weight: NonNegFloat = 0.0
    resize: ResizeMode = "pad"  # how a photo becomes the square input (see ZeroShotMethod)
    label_set: LabelSet | None = None  # the classes learned; None: trainer.label_set
    # Adapt to unlabelled real photos after training (frozen only); null: synthetic only.
    self_training: SelfTrainingParams | None = None
    # Train on product shots of the renders instead of the composites; null: composites.
    product_shots: ProductShotParams | None = None
    # false: every CAD model trains the head, none held out for the synthetic val/test splits
    # (no synthetic figures then; the epochs run to the end). For a frozen ncm head, whose
    # class means gain from every model and need no early stopping.
    hold_out_models: bool = True
    epochs: PositiveInt | None = None
    early_stopping_patience: Annotated[int, Field(ge=0)] | None = None  # None: trainer's

    @model_validator(mode="after")
    def _ncm_is_frozen(self) -> "PretrainedMethod":
        if self.head == "ncm" and self.mode != "frozen":
            raise ValueError(f"head: ncm needs mode: frozen (the class means of fixed features), got mode: {self.mode}")
        if self.self_training is not None and self.mode != "frozen":
            raise ValueError(f"self_training needs mode: frozen (features of fixed photos), got mode: {self.mode}")
        return self


# Each class's ImageNet classes (names as in the labels file: the whole line or its first
# name), WordNet hyponyms of the class: the ImageNet classifier's probabilities of a class's
# entries are summed (imagenet_zeroshot, and the prior of a pretrained method). A class
# without an entry is "not applicable": never predicted by the ImageNet classifier.
IMAGENET_LABEL_MAP: dict[str, tuple[str, ...]] = {
    "aeroplane": ("airliner", "warplane"),
    "bicycle": ("mountain bike", "bicycle-built-for-two"),
    "boat": ("canoe", "catamaran", "container ship", "fireboat", "gondola", "lifeboat", "liner", "schooner",
             "speedboat", "trimaran", "yawl"),
    "bottle": ("beer bottle", "pill bottle", "pop bottle", "water bottle", "wine bottle"),
    "bus": ("minibus", "school bus", "trolleybus"),
    "car": ("beach wagon", "cab", "convertible", "jeep", "limousine", "minivan", "Model T", "racer", "sports car"),
    "chair": ("barber chair", "folding chair", "rocking chair", "throne"),
    "diningtable": ("dining table",),
    "motorbike": ("moped", "motor scooter"),
    "sofa": ("studio couch",),
    "train": ("bullet train", "electric locomotive", "freight car", "passenger car", "steam locomotive"),
    "tvmonitor": ("monitor", "screen", "television"),
    "bed": ("four-poster", "crib", "cradle", "bassinet"),
    "bookcase": ("bookcase",),
    "desk": ("desk",),
}
ResizeMode = Literal["pad", "stretch"]


class ImageNetParams(Section):
    """The ImageNet classifier's class names and the map from our classes to them."""

    labels: str = f"{SHARED_DATA}/weights/coral/imagenet_labels.txt"  # one name a line, as the weights' logits
    label_map: dict[str, tuple[str, ...]] = IMAGENET_LABEL_MAP

    @model_validator(mode="after")
    def _known_classes(self) -> "ImageNetParams":
        unknown = sorted(set(self.label_map) - set(ALL_CLASSES))
        if unknown:
            raise ValueError(f"label_map: {unknown} are not classes of the pipeline ({', '.join(ALL_CLASSES)})")
        return self


class ZeroShotMethod(Section):
    """The reference to beat: the ImageNet classifier with ``imagenet.label_map``, no CAD and
    no training (what a user without our renders would pick)."""

    kind: Literal["imagenet_zeroshot"] = "imagenet_zeroshot"
    backbone: Literal["mobilenet_v2", "mobilenet_v1_025"] = "mobilenet_v2"
    weights: str | None = f"{SHARED_DATA}/weights/coral/mobilenet_v2_1.0_224_quant.tflite"
    # How a photo becomes the square input: pad (reflect the shorter side, the composites'
    # framing) or stretch (resize, aspect ratio lost; the usual ImageNet practice).
    resize: ResizeMode = "stretch"
    label_set: LabelSet | None = None  # the classes covered; None: trainer.label_set


Method = Annotated[HogSoftmaxMethod | ClassifierMethod | ConjugateMethod | PretrainedMethod | ZeroShotMethod,
                   Field(discriminator="kind")]

DEFAULT_METHODS: dict[str, Any] = {
    "baseline": HogSoftmaxMethod(),
    "gmcml": ConjugateMethod(),
    "gmml": ConjugateMethod(noise="fixed"),
    "vc": ConjugateMethod(feedback=False),
    "fcn": ConjugateMethod(reconstructor="fcn"),
    "deconvnet": ConjugateMethod(reconstructor="deconvnet"),
    "zigzagnet": ClassifierMethod(triplet=TripletParams()),
    "squeezenet": ClassifierMethod(classifier="squeezenet", epochs=40, early_stopping_patience=0),
    "alexnet": ClassifierMethod(classifier="alexnet", epochs=40, early_stopping_patience=0),
    "frozen_mobilenet_v2": PretrainedMethod(),
    "frozen_ncm_mobilenet_v2": PretrainedMethod(head="ncm"),
    "finetune_mobilenet_v2": PretrainedMethod(mode="finetune", image_size=128),
    "unfreeze_mobilenet_v2": PretrainedMethod(mode="unfreeze_after", image_size=128),
    "imagenet_zeroshot": ZeroShotMethod(),
    "frozen_ncm_prior_mobilenet_v2": PretrainedMethod(head="ncm", prior_weight=8.0, resize="stretch"),
    "selftrained_mobilenet_v2": PretrainedMethod(head="ncm", prior_weight=8.0, resize="stretch",
                                                 self_training=SelfTrainingParams()),
    "frozen_ncm_shots_mobilenet_v2": PretrainedMethod(head="ncm", resize="stretch", product_shots=ProductShotParams(),
                                                      hold_out_models=False),
    "frozen_ncm_shots_prior_mobilenet_v2": PretrainedMethod(head="ncm", resize="stretch",
                                                            product_shots=ProductShotParams(), hold_out_models=False,
                                                            prior_weight=0.5),
    "frozen_ncm_pascal3d": PretrainedMethod(head="ncm", label_set="pascal3d"),
    "imagenet_zeroshot_pascal3d": ZeroShotMethod(label_set="pascal3d"),
}


class TrainParams(Section):
    """Which methods the pipeline trains: ``methods`` is the whole comparison (the DVC
    matrix: ``dvc repro`` trains and evaluates all of them, ``make compare``); ``default``
    is what ``make run`` trains."""

    methods: tuple[str, ...] = tuple(DEFAULT_METHODS)
    default: tuple[str, ...] = ("gmcml", "frozen_ncm_shots_prior_mobilenet_v2")


EvalKind = Literal["proxy_real", "ikea", "pascal3d", "objectnet3d", "voc"]


class EvalDatasetParams(Section):
    """One evaluation dataset, read from its own files (core/evalsets.py)."""

    name: str  # the key in metrics/evaluate.json, e.g. ikea_test
    kind: EvalKind
    root: str | None = None  # None: proxy_real uses paths.proxy_real
    split: str | None = None  # ikea: val|test; pascal3d: train|val; voc: a list name
    subset: Literal["imagenet", "pascal"] = "imagenet"  # pascal3d only
    splits_csv: str | None = None  # ikea: image,category,ikea_model,split
    year: str = "2012"  # voc only
    exclude_difficult: bool = True
    exclude_truncated: bool = False
    exclude_occluded: bool = False
    max_objects: PositiveInt | None = None  # evaluate a deterministic subset (quick runs)
    required: bool = False  # a missing dataset fails the stage instead of a "skipped" line


class EvaluateParams(Section):
    """The evaluate stage, once per trained method (``evaluate@<method>``)."""

    datasets: tuple[EvalDatasetParams, ...] = (
        EvalDatasetParams(name="proxy_real", kind="proxy_real"),
        *(EvalDatasetParams(name=f"ikea_{split}", kind="ikea", root=f"{SHARED_DATA}/ikea/IKEA",
                            splits_csv=f"{SHARED_DATA}/ikea/splits.csv", split=split) for split in ("val", "test")),
        *(EvalDatasetParams(name=f"coco128_{part}", kind="voc", root=f"{SHARED_DATA}/coco128/{part}", split="test")
          for part in ("train2017", "val2017")),
        *(EvalDatasetParams(name=f"pascal3d_{subset}_val", kind="pascal3d", root=f"{SHARED_DATA}/PASCAL3D+_release1.1",
                            subset=subset, split="val") for subset in ("imagenet", "pascal")),
    )
    # Predictions are restricted to the dataset's own label set (closed-set protocol).
    restrict_to_dataset_classes: bool = True
    crop_context: NonNegFloat = 0.0  # relative margin added around a box before cropping
    batch_size: PositiveInt = 64
    reliability_bins: Annotated[int, Field(ge=2, le=100)] = 10

    def dataset(self, name: str, where: str) -> EvalDatasetParams:
        """The entry called ``name``; a ValueError naming ``where`` (the key that asked) if none."""
        for d in self.datasets:
            if d.name == name:
                return d
        raise ValueError(f"{where}: {name!r} is not an evaluate.datasets entry "
                         f"(defined: {[d.name for d in self.datasets]})")

    @model_validator(mode="after")
    def _unique(self) -> "EvaluateParams":
        names = [d.name for d in self.datasets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"dataset names must be unique, repeated: {dupes}")
        return self


class ContractsParams(Section):
    """Data contracts (great-expectations) on every manifest, before training."""

    class_balance: Annotated[float, Field(gt=1.0)] = 3.0  # each class within [median/x, median*x]
    image_sample: Annotated[int, Field(ge=0)] = 16  # images per manifest checked for degenerate statistics
    check_files: bool = True  # every file a manifest names exists


class PromotionParams(Section):
    """Model registry: every trained model becomes ``challenger``; ``champion`` only if better."""

    enabled: bool = True
    model_name: str = "cad2real-classifier"
    # The primary metric: the first of these the evaluation measured (IKEA val, never test;
    # the synthetic proxy-real set when no real photos are configured).
    metrics: tuple[str, ...] = ("datasets.ikea_val.mean_class_accuracy", "datasets.proxy_real.mean_class_accuracy")
    min_improvement: NonNegFloat = 0.005  # the challenger must beat the champion by more than this
    max_class_drop: NonNegFloat = 0.10  # and no class of that dataset may lose more than this
    # ... judged on classes with at least this many objects (IKEA val has 5 beds, 5 desks:
    # one photo is 0.2 of such a class)
    min_class_objects: Annotated[int, Field(ge=0)] = 10

    @model_validator(mode="after")
    def _no_test_split(self) -> "PromotionParams":
        bad = [m for m in self.metrics if "_test." in m]
        if bad:
            raise ValueError(f"promotion is a choice: it may not use a test split ({bad}); use val")
        return self


FeatureLayer = Literal["c3", "c4", "c5", "gap"]
Similarity = Literal["l2", "dot", "cos"]
AdaptationVariant = Literal["none", "affine", "affine_relu", "conv1x1", "conv3x3", "two_layer"]


class FeaturesParams(Section):
    """Frozen CNN features of rendered views and photos (seed 004 §3.2.2; core/features.py):
    the view database of retrieval and exemplar detection."""

    backbone: Literal["mobilenet_v2"] = "mobilenet_v2"
    # The ImageNet MobileNetV2; missing: a warning and a seeded random initialisation.
    weights: str | None = f"{SHARED_DATA}/weights/coral/mobilenet_v2_1.0_224_quant.tflite"
    # Stored for every rendered view: c3/c4/c5 (conv, stride 8/16/32), gap (pooled 1280-d).
    layers: tuple[FeatureLayer, ...] = ("c3", "c4", "c5", "gap")
    image_size: Annotated[int, Field(ge=32, le=512)] = 128  # a box's longer side is brought to this
    grid: Annotated[int, Field(ge=1, le=8)] = 4  # its cells max-pooled to grid x grid
    # Image around a box the network sees, per side, in box sizes; None: the whole image (what
    # detection proposals see, so a box gives the same feature either way).
    context: NonNegFloat | None = None
    grey: bool = True  # grey-scale views and photos (seed 004 §3.2.4, §4.2.3)
    relu: bool = True  # clamp the linear bottleneck outputs at 0 (the seed's post-ReLU features)
    batch_size: PositiveInt = 64


class RetrievalParams(Section):
    """Cross-domain retrieval (seed 004 §3.2–3.3): rendered view of best match per photo."""

    similarities: tuple[Similarity, ...] = ("l2", "dot", "cos")  # eq. 3.1-3.3
    aspect_tau: Annotated[float, Field(ge=0.0, le=1.0)] = 0.9  # eq. 3.4; 0 = no filter
    top_k: PositiveInt = 5
    # Names of evaluate.datasets entries to query (missing ones are "skipped" lines).
    datasets: tuple[str, ...] = ("proxy_real", "ikea_val", "ikea_test")


class AdaptationParams(Section):
    """φ: real -> rendered feature adaptation (seed 004 §4.2), trained on the grey-scale
    (composite, clean render) pairs with the squared-cosine loss and the seed's SGD."""

    layer: FeatureLayer = "c4"
    variants: tuple[AdaptationVariant, ...] = ("affine", "affine_relu", "conv1x1", "conv3x3", "two_layer")
    default: AdaptationVariant = "affine_relu"  # the seed's best: detection and predict use it
    epochs: PositiveInt = 30
    batch_size: Annotated[int, Field(ge=2)] = 128
    lr: Annotated[float, Field(gt=0.0)] = 1.0
    lr_step_epochs: PositiveInt = 15  # lr x lr_gamma every this many epochs
    lr_gamma: Annotated[float, Field(gt=0.0, le=1.0)] = 0.1
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.9
    weight_decay: NonNegFloat = 5.0e-4
    val_models: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.15  # whole models held out: the val loss
    # Unlabelled real photos for the methods that adapt to the user's domain (a pretrained
    # method's self_training): a folder of images, else the images of an evaluate.datasets
    # entry with its labels never read (never a test split). None of either: no adaptation.
    unlabelled_dir: str | None = None
    unlabelled_dataset: str | None = "ikea_val"

    @model_validator(mode="after")
    def _default_trained(self) -> "AdaptationParams":
        if self.default != "none" and self.default not in self.variants:
            raise ValueError(f"default: {self.default!r} must be one of variants {list(self.variants)} (or none)")
        return self


class ExemplarParams(Section):
    """Exemplar detection (seed 004 §4.3): sliding-window proposals, features pooled from
    one map of the image per window size, calibrated scores Y·φ(x)+d, aspect-ratio filter, NMS."""

    # Window longer side / shorter image side: one feature map per size (the pyramid).
    window_sizes: Range = Range(lo=0.2, hi=0.95)
    window_size_step: Annotated[float, Field(gt=1.0)] = 1.3
    window_aspects: Range = Range(lo=0.4, hi=2.5)  # height / width, geometric steps of
    window_aspect_step: Annotated[float, Field(gt=1.0)] = 1.25  # about 1/tau^2: every view has a window
    window_stride: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5  # fraction of the window side
    aspect_tau: Annotated[float, Field(ge=0.0, le=1.0)] = 0.9
    calibration_patches: PositiveInt = 20000  # random background windows (no object) for s' = c s + d
    calibration_percentile: Annotated[float, Field(gt=50.0, lt=100.0)] = 99.99
    nms_iou: Probability = 0.3
    max_per_image: PositiveInt = 100
    iou_threshold: Probability = 0.5  # VOC
    azimuth_recall: Probability = 0.25  # Fig. 4.9: azimuth errors of the correct detections at this recall
    taus: tuple[Annotated[float, Field(ge=0.0, le=1.0)], ...] = (0.0, 0.6, 0.75, 0.85, 0.9, 0.95)  # Fig. 4.8's axis
    # Table 4.3: AP with random subsets of the views / of the models (and all their views).
    view_counts: tuple[PositiveInt, ...] = (200, 500, 1000, 2000)
    model_counts: tuple[PositiveInt, ...] = (5, 10, 20, 40)
    datasets: tuple[EvalDatasetParams, ...] = (
        EvalDatasetParams(name="proxy_detection", kind="proxy_real", root="data/proxy_detection"),)


class ComputeParams(Section):
    """Where sharded stages (render, composite, proxy_real) run. Outputs are identical
    either way, so this is not a DVC parameter of those stages."""

    # local: a process pool on this machine; dask: a distributed.LocalCluster of worker
    # processes, or the cluster at ``dask_address`` (its workers must see this project's
    # files at the same path, and have the venv and OpenGL libraries).
    engine: Literal["local", "dask"] = "local"
    dask_address: str | None = None  # e.g. tcp://scheduler:8786; None = a LocalCluster
    # The training stages (train@<method>) run as flow runs of this Prefect deployment
    # (e.g. "cad2real-stages/train-gpu" on a GPU work pool, prefect.yaml) instead of in
    # the pipeline's process; its worker must see this project checkout at the same path.
    training_deployment: str | None = None


ViewpointMethodName = Annotated[str, Field(pattern=r"^(joint_)?(reg2d|reg3d|classif|geom)(_real)?$")]


class ViewpointParams(Section):
    """Viewpoint estimation and joint detection (seed 004 chapter 5; core/viewpoint.py):
    frozen ``layer`` features of boxes, a trained trunk and per-method branches."""

    methods: tuple[ViewpointMethodName, ...] = ("reg2d", "reg3d", "classif", "geom", "joint_reg2d",
                                                "joint_reg3d", "joint_classif")
    layer: FeatureLayer = "c4"
    grid: Annotated[int, Field(ge=2, le=8)] = 8
    bins: Annotated[int, Field(ge=4, le=360)] = 36  # direct classification (the seed leaves Nv open)
    geom_bins: Annotated[int, Field(ge=4, le=720)] = 360  # eq. 5.5: Nv = 360,
    geom_sigma: Annotated[float, Field(gt=0.0)] = 3.0  # sigma = 3 (in bins)
    lam: NonNegFloat = 1.0  # eq. 5.6: L = Ldet + lambda Lreg
    width: PositiveInt = 64  # trunk channels
    hidden: PositiveInt = 256  # branch width
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    epochs: PositiveInt = 10  # passes over the object boxes
    batch_size: PositiveInt = 128
    positive_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.25  # objects per detection batch (the seed's 25%)
    optimizer: Literal["sgd", "adam"] = "adam"  # the seed's SGD under-trains the small head in 10 epochs
    lr: Annotated[float, Field(gt=0.0)] = 0.001
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.9  # sgd only
    weight_decay: NonNegFloat = 0.0001
    lr_step_epochs: PositiveInt = 6  # lr x 0.1 every this many epochs
    val_models: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1  # whole models held out: synthetic val figures
    hflip: bool = True  # mirrored boxes with mirrored targets (azimuth -> 360 - a, theta -> -theta)
    jitter_iou: Probability = 0.7  # one jittered box per object, IoU with the object >= this
    part_negatives: NonNegInt = 1  # windows per composite overlapping its object by IoU in [0.1, 0.4)
    background_negatives: NonNegInt = 6000  # random windows of the composite stage's backgrounds
    # Real annotated photos (PASCAL3D+ train) added to the renders by the ``<method>_real``
    # methods, reported separately; read only when one is listed (missing: the
    # viewpoint_features stage fails naming the path; an evaluation split is refused).
    real_train: EvalDatasetParams | None = EvalDatasetParams(
        name="pascal3d_imagenet_train", kind="pascal3d", root=f"{SHARED_DATA}/PASCAL3D+_release1.1",
        subset="imagenet", split="train")
    # Known boxes and classes (§5.3): Acc@pi/6 and median error; names of evaluate.datasets.
    datasets: tuple[str, ...] = ("proxy_real", "pascal3d_imagenet_val", "pascal3d_pascal_val")
    # Joint detection and pose (§5.4): AP and AVP over sliding windows of whole images.
    detection_datasets: tuple[EvalDatasetParams, ...] = (
        EvalDatasetParams(name="proxy_detection", kind="proxy_real", root="data/proxy_detection"),
        EvalDatasetParams(name="pascal3d_pascal_val", kind="pascal3d", root=f"{SHARED_DATA}/PASCAL3D+_release1.1",
                          subset="pascal", split="val"))
    avp_bins: tuple[PositiveInt, ...] = (4, 8, 16, 24)


GenerationMethod = Literal["hybrid", "random_search", "evolution", "fixed"]


class GenerationSearchParams(Section):
    """Learning the generation parameters β (seed 002; core/generation_search.py): the
    hybrid gradient and its baselines, each charged ``(2m + 1) * k * batch`` generated
    samples per outer step, on a frozen-feature network and a real validation split."""

    categories: tuple[str, ...] = IKEA_CLASSES  # the classes generated and learned
    image_size: Annotated[int, Field(ge=32, le=512)] = 96  # render, composite and network input side
    methods: tuple[GenerationMethod, ...] = ("hybrid", "random_search", "evolution", "fixed")
    fixed_count: PositiveInt = 10  # random fixed β (Table 1: best / median / worst of them)
    # Extra hybrid runs started from the best / median / worst fixed β (Table 1); "default"
    # (the hand-set β of params.yaml) is the run compared with the baselines.
    hybrid_inits: tuple[Literal["default", "best", "median", "worst"], ...] = ("default", "best", "median", "worst")
    steps: PositiveInt = 12  # outer steps T
    k: PositiveInt = 4  # unrolled SGD steps per outer step
    batch: PositiveInt = 8  # samples per SGD step
    directions: PositiveInt = 4  # m (eq. 10)
    sigma: Annotated[float, Field(gt=0.0, le=0.5)] = 0.05  # finite-difference scale on normalised β
    inner_lr: Annotated[float, Field(gt=0.0)] = 0.2  # η of the head's SGD (eq. 6)
    beta_lr: Annotated[float, Field(gt=0.0)] = 0.02  # RMSprop step on normalised β
    rmsprop_decay: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.9
    # L: a real validation split, by name from evaluate.datasets (never a test split); when
    # it is missing, the proxy-real set (SYNTHETIC, said so in every output).
    validation: str = "ikea_val"
    test: str | None = "ikea_test"  # the final comparison of each method's β (report only)
    final_samples: PositiveInt = 600  # samples of f(β) the final head of each β is trained on
    chosen: Literal["hybrid", "random_search", "evolution", "fixed_best"] = "hybrid"  # whose β beta.yaml holds

    @model_validator(mode="after")
    def _check(self) -> "GenerationSearchParams":
        unknown = sorted(set(self.categories) - set(ALL_CLASSES))
        if unknown:
            raise ValueError(f"unknown categories {unknown}; known: {list(ALL_CLASSES)}")
        if len(self.categories) < 2:
            raise ValueError("categories: at least two classes (the network is a classifier)")
        if "test" in self.validation:
            raise ValueError(f"validation: {self.validation!r} looks like a test split; L must come from val")
        if self.chosen.removesuffix("_best") not in self.methods:
            raise ValueError(f"chosen: {self.chosen} is not among methods {list(self.methods)}")
        if "fixed" not in self.methods and set(self.hybrid_inits) - {"default"}:
            raise ValueError("hybrid_inits best/median/worst need the fixed method")
        return self


class Params(Section):
    seed: Annotated[int, Field(ge=0)] = 0
    paths: PathsParams = PathsParams()
    compute: ComputeParams = ComputeParams()
    catalog: CatalogParams = CatalogParams()
    render: RenderParams = RenderParams()
    composite: CompositeParams = CompositeParams()
    proxy_real: ProxyRealParams = ProxyRealParams()
    proxy_detection: ProxyDetectionParams = ProxyDetectionParams()
    contracts: ContractsParams = ContractsParams()
    trainer: TrainerParams = TrainerParams()
    methods: dict[str, Method] = DEFAULT_METHODS
    imagenet: ImageNetParams = ImageNetParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    promotion: PromotionParams = PromotionParams()
    features: FeaturesParams = FeaturesParams()
    retrieval: RetrievalParams = RetrievalParams()
    adaptation: AdaptationParams = AdaptationParams()
    exemplar: ExemplarParams = ExemplarParams()
    viewpoint: ViewpointParams = ViewpointParams()
    generation_search: GenerationSearchParams = GenerationSearchParams()

    @model_validator(mode="after")
    def _known_methods(self) -> "Params":
        bad = [m for m in self.methods if not re.fullmatch(r"[a-z0-9_]+", m)]
        if bad:
            raise ValueError(f"methods: names {bad} must be lower-case letters, digits and _ (stage names)")
        unknown = [m for m in (*self.train.methods, *self.train.default) if m not in self.methods]
        if unknown:
            raise ValueError(f"train: {unknown} not defined under `methods` (defined: {sorted(self.methods)})")
        extra = [m for m in self.train.default if m not in self.train.methods]
        if extra:
            raise ValueError(f"train.default: {extra} must also be in train.methods (the DVC matrix)")
        return self


class ParamsError(ValueError):
    """A params file that does not match the schema; the message names file and keys."""


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def parse_params(raw: dict[str, Any], source: str = "params") -> Params:
    """Validate a params mapping; errors name the dotted key (``render.image_size``)."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"  {_dotted(err['loc']) or '<root>'}: {err['msg']}"
            + (f" (got {err['input']!r})" if err["type"] != "missing" and not isinstance(err["input"], dict) else "")
            for err in exc.errors()
        ]
        raise ParamsError(f"{source}: invalid parameters\n" + "\n".join(lines)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Load and validate ``params.yaml``; a missing file or bad YAML names the file."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return parse_params(raw, source=str(path))


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return ``raw`` with dotted-key overrides (``{"render.views_per_model": 2}``) applied,
    as ``dvc exp run -S`` does. Nested mappings are created where missing."""
    out: dict[str, Any] = yaml.safe_load(yaml.safe_dump(raw))  # deep copy, plain types
    for dotted, value in overrides.items():
        node = out
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return out
