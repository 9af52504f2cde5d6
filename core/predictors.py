"""The one interface between trained models and their users (evaluate, ``c2r predict``).

A trained model is a folder: ``predictor.json`` (kind, categories, preprocessing, how it
was trained) plus its weights (``weights.npz``; torch models: their state dict as arrays,
:mod:`core.networks`). Never a pickle: loading a model runs no code from the file.
Each kind registers a loader with :func:`register`; :func:`load_predictor` dispatches.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from core.io import atomic_dir, read_image

PREDICTOR_FILE = "predictor.json"
WEIGHTS_FILE = "weights.npz"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@runtime_checkable
class Predictor(Protocol):
    """What every trained model offers: class probabilities (and optionally viewpoints)
    for RGB uint8 images of any size, each showing one object."""

    categories: tuple[str, ...]
    info: dict[str, Any]  # predictor.json: kind, training data ("synthetic only"), params

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, len(categories)) probabilities, rows summing to 1."""
        ...

    def predict_viewpoint(self, images: Sequence[np.ndarray]) -> np.ndarray | None:
        """(N, 3) azimuth, elevation, theta in degrees, or None without a viewpoint head."""
        ...


class PredictorError(ValueError):
    """A model folder that cannot be loaded; the message names the file and the problem."""


_LOADERS: dict[str, Callable[[Path, dict[str, Any]], Predictor]] = {}


def register(kind: str) -> Callable[[Callable[[Path, dict[str, Any]], Predictor]], Callable[..., Predictor]]:
    """Register ``loader(folder, info) -> Predictor`` for ``predictor.json`` files of ``kind``."""

    def wrap(loader: Callable[[Path, dict[str, Any]], Predictor]) -> Callable[..., Predictor]:
        _LOADERS[kind] = loader
        return loader

    return wrap


def save_predictor(folder: str | Path, info: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Write ``predictor.json`` + ``weights.npz`` atomically (a crash leaves the old model)."""
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        (tmp / PREDICTOR_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        write_npz(tmp / WEIGHTS_FILE, arrays)
    return folder


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` with fixed zip timestamps, so the same weights give the same bytes
    (``np.savez`` stamps the current time, which would make every DVC run look new)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(arrays[name]), allow_pickle=False)


def load_weights(folder: Path) -> dict[str, np.ndarray]:
    path = folder / WEIGHTS_FILE
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise PredictorError(f"{path}: cannot read model weights: {exc}") from None


def load_predictor(uri: str | Path) -> Predictor:
    """Load a model folder (or its ``predictor.json``)."""
    folder = Path(uri)
    if folder.name == PREDICTOR_FILE:
        folder = folder.parent
    path = folder / PREDICTOR_FILE
    if not path.is_file():
        raise PredictorError(f"{path}: no trained model here (expected {PREDICTOR_FILE}; run `dvc repro` first)")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PredictorError(f"{path}: not valid JSON: {exc}") from None
    kind = info.get("kind")
    if kind not in _LOADERS:
        _import_kinds()
    if kind not in _LOADERS:
        raise PredictorError(f"{path}: unknown predictor kind {kind!r}; known: {sorted(_LOADERS)}")
    if not info.get("categories"):
        raise PredictorError(f"{path}: field 'categories' is missing or empty")
    return _LOADERS[kind](folder, info)


def _import_kinds() -> None:
    """Modules that register predictor kinds (imported lazily: they may need torch)."""
    import core.baseline  # noqa: F401
    import core.networks  # noqa: F401
    import core.viewpoint  # noqa: F401


def square_pad(image: np.ndarray) -> np.ndarray:
    """Pad the shorter side symmetrically (reflecting the border) to a square, so an
    object keeps its aspect ratio when resized, as in the composites."""
    h, w = image.shape[:2]
    if h == w:
        return image
    d = abs(h - w)
    a, b = d // 2, d - d // 2
    pad = ((a, b), (0, 0)) if h < w else ((0, 0), (a, b))
    mode = "reflect" if min(h, w) > max(a, b) else "edge"
    return np.pad(image, pad + ((0, 0),) * (image.ndim - 2), mode=mode)


def to_input(image: np.ndarray, size: int, resize: str = "pad") -> np.ndarray:
    """Any RGB/RGBA/grey uint8 image -> (size, size, 3) uint8: square-padded then resized
    (``resize="pad"``, the object keeps its aspect ratio as in the composites) or resized
    directly (``"stretch"``, the usual ImageNet practice). Area interpolation when shrinking,
    bilinear when enlarging."""
    if resize not in ("pad", "stretch"):
        raise ValueError(f"unknown resize mode {resize!r}: pad or stretch")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = square_pad(image[:, :, :3]) if resize == "pad" else image[:, :, :3]
    interp = cv2.INTER_AREA if max(image.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=interp)


def image_files(paths: Sequence[str | Path]) -> list[Path]:
    """Image files named directly or found (sorted, recursively) in the named folders."""
    out: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            out += sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif item.is_file():
            out.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such image or folder")
    return out


def predict_files(predictor: Predictor, files: Sequence[Path], top_k: int = 3) -> list[dict[str, Any]]:
    """One record per image: the category, its probability, the top-k and the viewpoint
    when the model has one. Unreadable images get an ``error`` naming the file."""
    records: list[dict[str, Any]] = []
    images, ok = [], []
    for path in files:
        try:
            images.append(read_image(path))
            ok.append(path)
        except (OSError, ValueError) as exc:
            records.append({"image": str(path), "error": str(exc)})
    if images:
        proba = predictor.predict_proba(images)
        views = predictor.predict_viewpoint(images)
        for i, path in enumerate(ok):
            order = np.argsort(-proba[i], kind="stable")[:top_k]
            rec: dict[str, Any] = {
                "image": str(path),
                "category": predictor.categories[order[0]],
                "probability": round(float(proba[i, order[0]]), 4),
                "top": [{"category": predictor.categories[j], "probability": round(float(proba[i, j]), 4)}
                        for j in order],
            }
            if views is not None:
                rec["viewpoint"] = dict(zip(("azimuth", "elevation", "theta"),
                                            (round(float(v), 1) for v in views[i]), strict=True))
            records.append(rec)
    order_of = {str(p): i for i, p in enumerate(files)}
    return sorted(records, key=lambda r: order_of[r["image"]])
