"""Scale-out: the sharded stages on a real Dask LocalCluster give the same bytes as the
local process pool (one GL context per Dask worker process)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from core.params import parse_params
from stages import catalog, composite, render
from tests.conftest import small_params_raw

pytestmark = pytest.mark.integration


def build(root: Path, engine: str, catalog_dir: Path | None = None):
    raw = small_params_raw(root)
    raw["catalog"]["procedural"].update(categories=["chair", "car"], models_per_category=2, heldout_per_category=1)
    raw["compute"] = {"engine": engine, "dask_address": None}
    if catalog_dir is not None:
        raw["paths"]["catalog"] = str(catalog_dir)
    params = parse_params(raw, engine)
    if catalog_dir is None:
        catalog.run(params)
    render.run(params)
    composite.run(params)
    return params


def test_dask_engine_gives_byte_identical_renders_and_composites(tmp_path: Path):
    local = build(tmp_path / "local", "local")
    dask = build(tmp_path / "dask", "dask", catalog_dir=Path(local.paths.catalog))
    for out, column in ((Path(local.paths.renders), "rgb"), (Path(local.paths.composites), "image")):
        other = Path(dask.paths.renders if column == "rgb" else dask.paths.composites)
        assert (out / "manifest.parquet").read_bytes() == (other / "manifest.parquet").read_bytes()
        files = pd.read_parquet(out / "manifest.parquet")[column]
        assert len(files) > 0
        for rel in files:
            assert (out / rel).read_bytes() == (other / rel).read_bytes(), rel
