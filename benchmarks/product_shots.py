"""Renders framed like product photos against the domain-randomised composites, on real photos.

    .venv/bin/python benchmarks/product_shots.py [--out FILE.md] [--quick]

Issue 18's "renders that look like photos" lever, through the pipeline's own stages: each
variant is a ``pretrained`` method (frozen MobileNetV2, nearest class mean, photos
stretched) trained by ``stages.train`` and scored by ``stages.evaluate`` into a temporary
folder (the repository's outputs are not touched), on IKEA ``val`` (choices) and ``test``
(report), and on the real COCO crops (``coco128_train2017`` for choices, ``val2017``):

- the training images: the composites, or ``product_shots`` (each render cropped to its box
  plus a margin, on a plain grey background); their margin, background and padding;
- ``hold_out_models``: the class means of the training split only, or of every CAD model;
- ``prior_weight``: the ImageNet prior added at inference (logit fusion).

Needs the renders and composites (``make run`` or ``dvc repro composite``) and
``../shared/data``. About 35 minutes on the 2-core machine (``--quick``: 4 variants, 10 minutes).
"""

from __future__ import annotations

import argparse
import datetime
import logging
import platform
import tempfile
from pathlib import Path
from typing import Any

import yaml

from core.params import load_params
from stages import evaluate, train

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("ikea_val", "ikea_test", "coco128_train2017", "coco128_val2017")
BASE: dict[str, Any] = {"kind": "pretrained", "head": "ncm", "resize": "stretch"}
SHOTS = {"product_shots": {}}
ALL = {"hold_out_models": False}

# (name, what, the method's settings over BASE)
VARIANTS: list[tuple[str, str, dict[str, Any]]] = [
    ("composites", "composites, training split of models", {}),
    ("composites_all", "composites, every model", ALL),
    ("shots", "product shots, training split of models", SHOTS),
    ("shots_all", "product shots, every model", SHOTS | ALL),
    ("shots_all_margin0", "product shots, every model, margin 0", {"product_shots": {"margin": 0.0}} | ALL),
    ("shots_all_margin20", "product shots, every model, margin 0.2", {"product_shots": {"margin": 0.2}} | ALL),
    ("shots_all_anygrey", "product shots, every model, background grey 0-255",
     {"product_shots": {"background": {"lo": 0.0, "hi": 255.0}}} | ALL),
    ("shots_all_pad", "product shots, every model, padded (photos too)", SHOTS | ALL | {"resize": "pad"}),
    *[(f"shots_all_prior_{str(w).replace('.', '_')}", f"product shots, every model, + {w:g} x ImageNet prior",
       SHOTS | ALL | {"prior_weight": w}) for w in (0.25, 0.5, 1.0, 2.0, 8.0)],
    ("composites_all_prior_0_5", "composites, every model, + 0.5 x ImageNet prior", ALL | {"prior_weight": 0.5}),
]
QUICK = ("composites_all", "shots_all", "shots_all_prior_0_5", "composites_all_prior_0_5")


def run_variants(variants: list[tuple[str, str, dict[str, Any]]], work: Path) -> list[dict[str, Any]]:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key in ("models", "plots", "metrics", "evaluation", "staging", "reports"):
        raw["paths"][key] = str(work / key)
    raw["evaluate"]["datasets"] = [d for d in raw["evaluate"]["datasets"] if d["name"] in DATASETS]
    raw["methods"].update({name: BASE | settings for name, _, settings in variants})
    (work / "params.yaml").write_text(yaml.safe_dump(raw))
    params = load_params(work / "params.yaml")
    rows = []
    for name, what, _ in variants:
        train.run(params, name)
        scores = evaluate.run(params, name)["datasets"]
        rows.append({"name": name, "what": what,
                     **{d: (scores[d]["accuracy"], scores[d]["mean_class_accuracy"]) for d in DATASETS
                        if "accuracy" in scores.get(d, {})}})
        print(rows[-1], flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    def cell(x: tuple[float, float] | None) -> str:
        return "—" if x is None else f"{x[0]:.3f} / {x[1]:.3f}"

    lines = ["| variant | IKEA val acc. / per-class | IKEA test | COCO train2017 | COCO val2017 |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['what']} | " + " | ".join(cell(r.get(d)) for d in DATASETS) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="also write the table to this markdown file")
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    variants = [v for v in VARIANTS if not args.quick or v[0] in QUICK]
    with tempfile.TemporaryDirectory(prefix="product_shots_") as tmp:
        rows = run_variants(variants, Path(tmp))
    text = (f"benchmarks/product_shots.py, {datetime.date.today()}, {platform.machine()} "
            f"({platform.processor() or 'cpu'}); frozen MobileNetV2, nearest class mean, photos stretched\n\n"
            + table(rows) + "\n")
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
