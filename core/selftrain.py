"""Self-training on unlabelled real photos: adapt a frozen-feature model to the user's domain.

The photos come from ``adaptation.unlabelled_dir`` (a folder) or the images of the
``evaluate.datasets`` entry ``adaptation.unlabelled_dataset`` (default: IKEA ``val``), whose
labels are never read; a test split is refused. The trained model (its head and, when it has
one, the ImageNet prior) labels each photo; a new softmax head then learns those
pseudo-labels, each pseudo-class weighing the same, beside the composites' true labels
(total weight ``composite_weight`` next to the photos' 1), and replaces the head. A model
adapted so says so: its training data reads "synthetic labels + N unlabelled real photos".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
import numpy as np

from core.baseline import fit_softmax
from core.evalsets import crop_object, open_evalset
from core.io import read_image
from core.params import Params, SelfTrainingParams
from core.predictors import image_files

log = logging.getLogger("cad2real.selftrain")


@dataclass(frozen=True)
class UnlabelledPhotos:
    images: list[np.ndarray]
    source: str  # what they are, for the model's "training data" line
    unreadable: list[str]


def check_source(params: Params) -> None:
    """Fail now (before a training) on an unset source, an unknown dataset or a test split."""
    a = params.adaptation
    if a.unlabelled_dir is not None:
        return
    if a.unlabelled_dataset is None:
        raise ValueError("self_training needs unlabelled photos: set adaptation.unlabelled_dir or "
                         "adaptation.unlabelled_dataset")
    d = params.evaluate.dataset(a.unlabelled_dataset, "adaptation.unlabelled_dataset")
    if (d.split is not None and "test" in d.split) or d.name.endswith("test"):
        raise ValueError(f"adaptation.unlabelled_dataset: {d.name!r} is a test split; unlabelled photos may "
                         "come from a validation split or a folder (adaptation.unlabelled_dir), never a test split")


def unlabelled_photos(params: Params) -> UnlabelledPhotos:
    """The photos of ``adaptation.unlabelled_dir``, else of ``adaptation.unlabelled_dataset``
    (object crops where the dataset has boxes; categories never read). Raises ValueError
    for a test split or when neither is set, FileNotFoundError when the photos are absent."""
    check_source(params)
    a = params.adaptation
    images, unreadable = [], []
    if a.unlabelled_dir is not None:
        source = f"folder {a.unlabelled_dir}"
        files = image_files([a.unlabelled_dir])
        for path in files:
            try:
                images.append(read_image(path))
            except ValueError as exc:
                unreadable.append(str(exc))
    else:
        d = params.evaluate.dataset(str(a.unlabelled_dataset), "adaptation.unlabelled_dataset")
        evalset = open_evalset(d, params.paths.proxy_real)
        source = f"{d.name} images, labels unread"
        current, pixels = None, None
        for image, obj in evalset.objects():
            if image.image != current:
                current = image.image
                try:
                    pixels = read_image(image.image)
                except ValueError as exc:
                    pixels = None
                    unreadable.append(str(exc))
            if pixels is not None:
                images.append(pixels if obj.bbox is None else crop_object(pixels, obj.bbox))
    for message in unreadable:
        log.warning("self-training: %s; left out", message)
    if not images:
        raise FileNotFoundError(f"self-training: no readable photo in {source}")
    return UnlabelledPhotos(images, source, unreadable)


def balanced_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Per row 1 / (its class's count), scaled to sum to the number of rows: each class present
    weighs the same."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    present = np.count_nonzero(counts)
    return len(labels) / (present * counts[labels])


def fit_student(photo_feats: np.ndarray, pseudo: np.ndarray, comp_feats: np.ndarray, comp_labels: np.ndarray,
                n_classes: int, p: SelfTrainingParams) -> tuple[np.ndarray, np.ndarray]:
    """The new head (W (D, C), b (C,)) on L2-normalised features: pseudo-labelled photos,
    class-balanced, plus the composites with total weight ``composite_weight`` x the photos'."""
    x_photo = photo_feats / np.linalg.norm(photo_feats, axis=1, keepdims=True).clip(1e-12)
    x_comp = comp_feats / np.linalg.norm(comp_feats, axis=1, keepdims=True).clip(1e-12)
    w_photo = balanced_weights(pseudo, n_classes)
    x, y, sw = x_photo, pseudo, w_photo
    if p.composite_weight > 0 and len(x_comp):
        x = np.concatenate([x_photo, x_comp])
        y = np.concatenate([pseudo, comp_labels])
        sw = np.concatenate([w_photo, np.full(len(x_comp), p.composite_weight * w_photo.sum() / len(x_comp))])
    # scikit-learn's C on the weighted mean: the penalty l2/2 ||W||^2 with l2 = 1 / (C * rows)
    return fit_softmax(x, y, n_classes, l2=1.0 / (p.c * len(x)), max_iter=500, sample_weight=sw)


def describe(n_photos: int, source: str) -> str:
    return f"synthetic labels + {n_photos} unlabelled real photos ({source})"
