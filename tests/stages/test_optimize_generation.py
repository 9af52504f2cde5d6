"""optimize_generation's pieces: the validation split (IKEA val, the proxy-real fallback),
the compute target, the β file of the flow. The whole stage runs in
tests/integration/test_flow.py (the generation flow on the small profile)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from core import generation_search as gs
from core.params import apply_overrides, parse_params
from flows.generation import exp_args, read_beta
from stages.optimize_generation import load_split, report, summarise, validation_set
from tests.core.evalset_fixtures import write_ikea, write_jpeg


class Tiny(nn.Module):
    embedding_dim = 4

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x)).mean(dim=(2, 3)) + 0.1


def params_with(tmp_path, **generation):
    ikea, splits = write_ikea(tmp_path / "ikea")
    raw = apply_overrides({}, {
        "paths.proxy_real": str(tmp_path / "proxy_real"),
        "evaluate.datasets": [
            {"name": "proxy_real", "kind": "proxy_real"},
            {"name": "ikea_val", "kind": "ikea", "root": str(ikea), "splits_csv": str(splits), "split": "val"},
            {"name": "ikea_test", "kind": "ikea", "root": str(ikea), "splits_csv": str(splits), "split": "test"},
        ],
        "generation_search.categories": ["bed", "bookcase", "chair", "desk", "diningtable", "sofa"],
        **{f"generation_search.{k}": v for k, v in generation.items()},
    })
    return parse_params(raw)


def write_proxy_real(root):
    rows = []
    for i, category in enumerate(["chair", "sofa", "car"]):
        write_jpeg(root / f"{i}.jpg", 20, 16)
        rows.append({"image_id": str(i), "image": f"{i}.jpg", "width": 20, "height": 16, "split": "test",
                     "domain": "proxy-real (synthetic)", "category": category, "model_id": f"m{i}",
                     "bbox_x0": 2.0, "bbox_y0": 2.0, "bbox_x1": 18.0, "bbox_y1": 14.0, "azimuth": 10.0,
                     "elevation": 5.0, "theta": 0.0, "distance": 2.0, "truncated": False, "occluded": False,
                     "difficult": False})
    pd.DataFrame(rows).to_parquet(root / "manifest.parquet", index=False)


def test_validation_is_the_ikea_val_split_of_the_searched_classes(tmp_path):
    params = params_with(tmp_path)
    net = gs.SearchNet(Tiny(), 6)
    val, skipped = validation_set(params, net, 32)
    assert skipped is None and val.name == "ikea_val" and val.domain == "real"
    # the fixture's val split: one chair, one bed
    assert sorted(params.generation_search.categories[i] for i in val.labels.tolist()) == ["bed", "chair"]
    assert val.feats.shape == (2, 4)
    assert torch.allclose(val.feats.norm(dim=1), torch.full((2,), gs.FEATURE_SCALE))
    test = load_split(params, "ikea_test", net, 32)
    assert len(test.labels) == 3  # bookcase, table (diningtable), desk


def test_without_ikea_the_loss_comes_from_the_proxy_real_set_and_says_so(tmp_path):
    params = params_with(tmp_path)
    (tmp_path / "proxy_real").mkdir()
    write_proxy_real(tmp_path / "proxy_real")
    shutil.rmtree(tmp_path / "ikea")
    val, skipped = validation_set(params, gs.SearchNet(Tiny(), 6), 32)
    assert val.name == "proxy_real" and val.domain == "proxy-real (synthetic)"
    assert "SYNTHETIC" in skipped and "ikea_val" in skipped
    assert len(val.labels) == 2  # the car is not a searched class


def test_an_unknown_validation_dataset_is_named(tmp_path):
    params = params_with(tmp_path, validation="ikea_validation")
    with pytest.raises(ValueError, match="'ikea_validation' is not in evaluate.datasets"):
        validation_set(params, gs.SearchNet(Tiny(), 6), 32)


def trace(name, losses, cpu_per_step, samples_per_step=10):
    tr = gs.Trace(name)
    for t, loss in enumerate(losses):
        tr.rows.append({"step": t, "val_loss": loss, "val_accuracy": 0.5, "val_mean_class_accuracy": 0.5,
                        "samples": t * samples_per_step, "cpu_s": t * cpu_per_step, "wall_s": t * cpu_per_step,
                        "u": np.zeros(2)})
    return tr


def test_the_compute_target_compares_time_to_the_best_baselines_loss():
    hybrid = trace("hybrid", [2.0, 1.5, 1.2, 1.1], cpu_per_step=10)
    rs = trace("random_search", [2.0, 1.6, 1.3, 1.2], cpu_per_step=12)
    ev = trace("evolution", [2.0, 1.9, 1.8, 1.7], cpu_per_step=12)
    out = summarise({"hybrid": hybrid, "random_search": rs, "evolution": ev}, [])
    t = out["target_less_compute"]
    assert t["best_baseline"] == "random_search" and t["best_baseline_val_loss"] == 1.2
    assert t["baseline_cpu_s"] == 36 and t["hybrid_cpu_s"] == 20 and t["met"] is True
    assert out["hybrid"]["best_val_loss"] == 1.1 and out["hybrid"]["samples"] == 30
    slow = trace("hybrid", [2.0, 1.9, 1.5, 1.3], cpu_per_step=10)
    assert summarise({"hybrid": slow, "random_search": rs}, [])["target_less_compute"]["met"] is False


def test_the_best_fixed_beta_is_charged_for_every_fixed_run():
    fixed = [trace(f"fixed_{i}", [2.0, 1.5 + i / 10, 1.0 + i / 10], cpu_per_step=1) for i in range(3)]
    hybrid = trace("hybrid", [2.0, 1.2, 1.0], cpu_per_step=5)
    out = summarise({"hybrid": hybrid, "fixed_best": fixed[0]}, fixed)
    t = out["target_less_compute"]
    # reaching 1.0 took the best run 2 s, and the other two runs (2 s each) had to run to know it was best
    assert t["best_baseline"] == "fixed_best" and t["baseline_cpu_s"] == 6 and t["hybrid_cpu_s"] == 10
    assert t["met"] is False


def test_the_report_labels_a_synthetic_validation_set():
    space = gs.BetaSpace(["chair", "sofa"])
    u = np.full(space.dim, 0.5)
    values = {"validation": {"name": "proxy_real", "domain": "proxy-real (synthetic)", "objects": 8},
              "skipped": "ikea_val not found", "image_size": 48,
              "budget": {"samples_per_step": 20, "steps": 2},
              "runs": summarise({"hybrid": trace("hybrid", [2.0, 1.0], 1)}, []), "final": {}, "table1": {},
              "final_samples": 12, "chosen": "hybrid", "beta_file": "data/generation/beta.yaml",
              "betas": {"default": list(u), "hybrid": list(u + 0.1)}}
    text = report(values, space)
    assert "proxy-real (synthetic), SYNTHETIC" in text and "Skipped: ikea_val not found" in text
    assert "render.distance.lo" in text  # moved by 10% of its range


def test_the_beta_file_is_checked_and_becomes_dvc_set_params(tmp_path):
    with pytest.raises(FileNotFoundError, match="no β file"):
        read_beta(tmp_path / "beta.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just a list\n")
    with pytest.raises(ValueError, match="bad.yaml: expected a mapping of dotted params keys"):
        read_beta(bad)
    good = tmp_path / "good.yaml"
    good.write_text("# comment\ncatalog.procedural.grammar.chair.dim_log_std: 0.2\nrender.distance.lo: 1.4\n")
    beta = read_beta(good)
    assert exp_args(beta) == ["-S", "++catalog.procedural.grammar.chair.dim_log_std=0.2",
                              "-S", "++render.distance.lo=1.4"]
