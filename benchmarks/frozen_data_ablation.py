"""Which training data and head make frozen ImageNet features work on real IKEA photos.

    .venv/bin/python benchmarks/frozen_data_ablation.py [--variants all|NAME,...] [--out DIR]

For each variant (dotted overrides of ``params.yaml``, as ``dvc exp run -S``) it renders
and composites the project's catalog into a scratch folder with the pipeline's own stages
(``stages.render``, ``stages.composite``), computes frozen MobileNetV2 features (the
``frozen_mobilenet_v2`` method's weights, 224 px) of the composites of the IKEA label set
and of the IKEA photos, and scores two heads on the IKEA ``val`` and ``test`` splits:

- ``softmax``: multinomial logistic regression on the training composites and their
  mirror images (``core.baseline.fit_softmax``, an L2 penalty of scikit-learn's C = 0.01,
  the best of 0.01-1 on IKEA val);
- ``ncm``: the nearest class mean on the cosine similarity (``models.heads``).

Needs the project's catalog (``make run`` first) and ``../shared/data`` (the weights, the
IKEA photos, the SUN2012 backgrounds, the PASCAL3D+ annotations). About 2-3 min per
variant on the 2-core machine. Real photos are only scored, never trained on.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml

from core import metrics as M
from core.baseline import fit_softmax
from core.evalsets import crop_object, load_ikea
from core.io import read_image
from core.params import LABEL_SETS, apply_overrides, load_params
from core.predictors import to_input
from core.pretrained import find_backbone
from core.trainsets import load_composites
from flows.smoke import absolute_shared
from models.heads import NearestClassMean

ROOT = Path(__file__).resolve().parents[1]

SUN = "../shared/data/backgrounds/sun2012"
PRIOR = "../shared/data/pascal3d_annotations/train.csv"
# name -> overrides of params.yaml; "old default" is the data before 2026-11-23.
VARIANTS: dict[str, dict[str, object]] = {
    "old default (icosphere views, no SUN)": {"render.viewpoint_prior.kind": "none",
                                              "composite.backgrounds.dir": None},
    "+ SUN2012 backgrounds": {"render.viewpoint_prior.kind": "none", "composite.backgrounds.dir": SUN},
    "+ PASCAL3D+ viewpoint prior, no SUN": {"composite.backgrounds.dir": None},
    "+ SUN + PASCAL3D+ viewpoint prior (default)": {},
    "default, grey renders": {"render.style": "grey"},
    "default, 224 px renders": {"render.image_size": 224, "composite.image_size": 224,
                                "composite.backgrounds.size": 320},
}
SOFTMAX_C = 0.01
SIZE = 224


def embed(backbone: torch.nn.Module, images: list[np.ndarray]) -> np.ndarray:
    """Pooled features of uint8 RGB images at SIZE, input (u - 128) / 128 as the TFLite files."""
    out = []
    with torch.no_grad():
        for i in range(0, len(images), 64):
            x = torch.from_numpy(np.stack(images[i : i + 64]).astype(np.float32)).permute(0, 3, 1, 2)
            out.append(backbone.embed((x - 128.0) / 128.0).numpy())
    return np.concatenate(out)


def make_data(name: str, overrides: dict[str, object], scratch: Path) -> Path:
    """Render + composite the project's catalog with ``overrides``; the composites folder."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw = absolute_shared(apply_overrides(raw, overrides), ROOT)
    folder = scratch / "".join(c if c.isalnum() else "_" for c in name)
    raw["paths"] |= {"catalog": str(ROOT / raw["paths"]["catalog"]), "renders": str(folder / "renders"),
                     "composites": str(folder / "composites"), "adaptation_pairs": str(folder / "pairs"),
                     "metrics": str(folder / "metrics"), "staging": str(folder / "staging")}
    raw["composite"]["adaptation_pairs"] = False
    if not (Path(raw["paths"]["catalog"]) / "manifest.parquet").is_file():
        raise SystemExit(f"{raw['paths']['catalog']}: no catalog; run `make run` (or `dvc repro catalog`) first")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    for stage in ("render", "composite"):
        subprocess.run([sys.executable, "-m", f"stages.{stage}", "--params", str(folder / "params.yaml")],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return folder / "composites"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default="all", help="comma-separated variant names (prefixes), or all")
    ap.add_argument("--out", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = ap.parse_args()
    chosen = [n for n in VARIANTS if args.variants == "all" or any(n.startswith(v) for v in args.variants.split(","))]
    params = load_params(ROOT / "params.yaml")
    spec = params.methods["frozen_mobilenet_v2"]
    weights = absolute_shared(spec.weights, ROOT)
    backbone, _ = find_backbone(spec.backbone, weights)
    backbone.eval()
    torch.manual_seed(0)
    categories = LABEL_SETS["ikea"]
    ikea = load_ikea(ROOT.parent / "shared/data/ikea/IKEA", ROOT.parent / "shared/data/ikea/splits.csv")
    crops, truth, split = [], [], []
    for image, obj in ikea.objects():
        pixels = read_image(image.image)
        crops.append(to_input(pixels if obj.bbox is None else crop_object(pixels, obj.bbox), SIZE))
        truth.append(categories.index(obj.category))
        split.append(image.split)
    real, truth, split = embed(backbone, crops), np.array(truth), np.array(split)
    print(f"# frozen MobileNetV2 features, IKEA label set; {datetime.date.today()}, {platform.machine()}, "
          f"{torch.get_num_threads()} threads; IKEA photos: {np.sum(split == 'val')} val, {np.sum(split == 'test')} test")
    print("| data | head | IKEA val acc. | IKEA val per-class | IKEA test acc. | IKEA test per-class |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = args.out or Path(tmp)
        for name in chosen:
            data = load_composites(make_data(name, VARIANTS[name], scratch), categories, SIZE, targets=False,
                                   val=params.trainer.val_models, test=params.trainer.test_models, seed=params.seed)
            rows = data.indices("train")
            feats = embed(backbone, [data.images[i] for i in rows] + [data.images[i][:, ::-1].copy() for i in rows])
            labels = np.concatenate([data.labels[rows], data.labels[rows]])
            # scikit-learn's C: mean cross-entropy + ||W||^2 / (2 C n)
            w, b = fit_softmax(feats, labels, len(data.categories), l2=1.0 / (SOFTMAX_C * len(feats)), max_iter=500)
            ncm = NearestClassMean(feats.shape[1], len(data.categories))
            ncm.set_means(torch.from_numpy(feats), torch.from_numpy(labels))
            index = np.array([categories.index(c) for c in data.categories])  # data class -> label-set index
            heads = {"softmax": index[(real @ w + b).argmax(1)],
                     "ncm": index[ncm(torch.from_numpy(real)).argmax(1).numpy()]}
            for head, pred in heads.items():
                names = np.array(categories)
                cells = [f"{M.accuracy(names[truth[split == s]], names[pred[split == s]]):.3f} | "
                         f"{M.mean_class_accuracy(names[truth[split == s]], names[pred[split == s]], categories):.3f}"
                         for s in ("val", "test")]
                print(f"| {name} | {head} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
