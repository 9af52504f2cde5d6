from pathlib import Path

import pytest
import yaml

from core.params import Params, ParamsError, apply_overrides, load_params, parse_params
from tests.conftest import ROOT, small_params_raw


def test_params_yaml_matches_schema():
    p = load_params(ROOT / "params.yaml")
    assert isinstance(p, Params)
    assert p.render.views_per_model > 0


def test_defaults_equal_params_yaml():
    """params.yaml states every default (no hidden knob differs from the file)."""
    assert load_params(ROOT / "params.yaml") == Params()


def test_small_profile_is_valid():
    p = parse_params(small_params_raw())
    assert p.render.image_size == 64


def test_unknown_key_names_dotted_path():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["render"]["views_per_modle"] = 3
    with pytest.raises(ParamsError, match=r"render\.views_per_modle: Extra inputs are not permitted"):
        parse_params(raw, "params.yaml")


def test_wrong_type_names_dotted_path():
    raw = apply_overrides(yaml.safe_load((ROOT / "params.yaml").read_text()), {"render.light.ambient.lo": "dim"})
    with pytest.raises(ParamsError, match=r"render\.light\.ambient\.lo"):
        parse_params(raw)


def test_semantic_checks():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    bad = apply_overrides(raw, {"render.z_min": 0.7})
    with pytest.raises(ParamsError, match="z_min"):
        parse_params(bad)
    bad = apply_overrides(raw, {"catalog.procedural.categories": ["chair", "unicorn"]})
    with pytest.raises(ParamsError, match="unicorn"):
        parse_params(bad)
    bad = apply_overrides(raw, {"render.distance": {"lo": 3.0, "hi": 1.0}})
    with pytest.raises(ParamsError, match=r"render\.distance"):
        parse_params(bad)


def test_frozen():
    p = Params()
    with pytest.raises(Exception):
        p.render.image_size = 3  # type: ignore[misc]


def test_missing_and_malformed_files(tmp_path: Path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("render: [unclosed\n")
    with pytest.raises(ParamsError, match="bad.yaml: not valid YAML"):
        load_params(bad)
