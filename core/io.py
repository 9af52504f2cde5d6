"""Atomic outputs, manifests and deterministic seeding shared by every stage."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger("cad2real")

MANIFEST = "manifest.parquet"


def setup_logging(level: int = logging.INFO) -> None:
    """Plain, timestamped log lines for stage entry points (idempotent)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def stable_hash(*parts: Any) -> str:
    """A hex digest that is stable across processes and machines (unlike ``hash()``)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\x00")
    return h.hexdigest()


def rng_for(seed: int, *keys: Any) -> np.random.Generator:
    """A generator determined by the global seed and the keys (e.g. model id, view index),
    independent of which worker or in which order the work runs."""
    digest = stable_hash(*keys)
    words = [int(digest[i : i + 8], 16) for i in range(0, 32, 8)]
    return np.random.default_rng(np.random.SeedSequence([seed, *words]))


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces ``final`` in one rename.

    On an exception the temporary directory is removed and ``final`` (if it existed) is
    left untouched, so an interrupted stage never leaves a partial output.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def write_manifest(df: pd.DataFrame, path: str | Path) -> None:
    """Write a manifest as Parquet with byte-stable output (no pandas index, no timestamps)."""
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    table = table.replace_schema_metadata(None)  # pandas metadata embeds library versions
    pq.write_table(table, str(path), compression="zstd", write_statistics=False)


def read_manifest(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found (run the stage that produces it)")
    return pq.read_table(str(path)).to_pandas()


def write_metrics(metrics_dir: str | Path, stage: str, values: dict[str, Any]) -> Path:
    """Write ``<metrics_dir>/<stage>.json`` (sorted keys, so unchanged values = same bytes)."""
    path = Path(metrics_dir) / f"{stage}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
    return path


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Write uint8 RGB/grey or uint16 grey PNG; RGB arrays are (H, W, 3) in RGB order."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError(f"{path}: could not write PNG")


def write_image(path: str | Path, image: np.ndarray, *, jpeg_quality: int = 90) -> None:
    """Write an RGB/grey uint8 image as PNG or JPEG, chosen by the file's suffix."""
    path = Path(path)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
        if not cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]):
            raise OSError(f"{path}: could not write JPEG")
    elif path.suffix.lower() == ".png":
        write_png(path, image)
    else:
        raise ValueError(f"{path}: unsupported image suffix {path.suffix!r}; .png, .jpg or .jpeg expected")


def read_image(path: str | Path, *, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Read an image as RGB uint8 (or unchanged with ``cv2.IMREAD_UNCHANGED``).

    Raises ``ValueError`` naming the file when it is missing or not a decodable image.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: image file not found")
    image = cv2.imread(str(path), flags)
    if image is None:
        raise ValueError(f"{path}: not a readable image (corrupt or unsupported format)")
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image
