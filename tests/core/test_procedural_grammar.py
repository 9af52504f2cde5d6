"""The procedural shape grammar's parameters β (seed 002): default meshes untouched, the
samplers' transforms, alignment of the model rng across β, valid meshes at the extremes
of every range, and the ``catalog.procedural.grammar`` params."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from core.meshes import check_mesh
from core.params import CatalogParams, ParamsError, ProceduralParams, apply_overrides, parse_params
from core.procedural import GENERATORS, generate
from core.procedural.parts import GRAMMAR_RANGES, Grammar, choice, coin, grammar_context, uniform
from stages.catalog import procedural_entries

REPO = Path(__file__).resolve().parents[2]

# The risky corners: every dimension shrunk or grown with the widest spread, optional
# parts always or never, choices sharpened or flattened.
EXTREME_GRAMMARS = [
    Grammar(dim_log_mean=m, dim_log_std=0.5, option_logit=o, choice_temperature=t)
    for m, o, t in itertools.product((-0.5, 0.5), (-4.0, 4.0), (0.25, 4.0))
]


def _fingerprint(model) -> list[tuple[str, bytes, bytes, bytes]]:
    return [(n, g.vertices.tobytes(), g.faces.tobytes(), np.asarray(g.visual.face_colors).tobytes())
            for n, g in sorted(model.scene.geometry.items())]


# --------------------------------------------------------------------------- Grammar


def test_grammar_defaults_change_nothing_and_ranges_are_validated():
    g = Grammar()
    assert (g.dim_log_mean, g.dim_log_std, g.option_logit, g.choice_temperature) == (0.0, 0.0, 0.0, 1.0)
    for name, (lo, hi) in GRAMMAR_RANGES.items():
        Grammar(**{name: lo})
        Grammar(**{name: hi})
        for bad in (lo - 1e-3, hi + 1e-3, float("nan")):
            with pytest.raises(ValueError, match=rf"{name} = {bad!r}"):
                Grammar(**{name: bad})


def test_samplers_without_grammar_are_the_plain_draws():
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    for _ in range(50):
        assert uniform(a, 0.2, 0.9) == round(float(b.uniform(0.2, 0.9)), 4)
        assert coin(a, 0.3) == bool(b.random() < 0.3)
        assert choice(a, ["x", "y", "z"], p=[0.5, 0.3, 0.2]) == "xyz"[int(b.choice(3, p=[0.5, 0.3, 0.2]))]


def test_default_grammar_gives_the_same_draws_and_consumes_only_its_own_rng():
    plain, ruled, grammar_rng = np.random.default_rng(3), np.random.default_rng(3), np.random.default_rng(9)
    def draws(rng: np.random.Generator) -> list[tuple[float, bool, str]]:
        return [(uniform(rng, 0.1, 2.0), coin(rng, 0.4), choice(rng, "abc", p=[0.2, 0.3, 0.5])) for _ in range(40)]

    expected = draws(plain)
    with grammar_context(Grammar(), grammar_rng):
        got = draws(ruled)
    assert got == expected
    # one z per uniform() call, from the grammar's rng only
    assert grammar_rng.bit_generator.state == _advanced(np.random.default_rng(9), 40)
    assert plain.bit_generator.state == ruled.bit_generator.state


def _advanced(rng: np.random.Generator, n: int) -> dict:
    rng.standard_normal(n)
    return rng.bit_generator.state


def test_context_is_reset_on_exit_and_on_error():
    rng = np.random.default_rng(0)
    with grammar_context(Grammar(dim_log_mean=0.5), np.random.default_rng(1)):
        with grammar_context(Grammar(dim_log_mean=-0.5), np.random.default_rng(1)):
            assert uniform(np.random.default_rng(0), 1.0, 1.0) == round(math.exp(-0.5), 4)
        assert uniform(np.random.default_rng(0), 1.0, 1.0) == round(math.exp(0.5), 4)
    assert uniform(rng, 1.0, 1.0) == 1.0
    with pytest.raises(RuntimeError), grammar_context(Grammar(dim_log_mean=0.5), np.random.default_rng(1)):
        raise RuntimeError
    assert uniform(rng, 1.0, 1.0) == 1.0


def test_uniform_is_scaled_by_a_log_normal_factor_aligned_across_grammars():
    """β ± δ on the same seeds: the same base draws and z, so the values differ only by the factor."""
    lo_values: list[float] = []
    hi_values: list[float] = []
    for mean, out in ((-0.2, lo_values), (0.2, hi_values)):
        rng = np.random.default_rng(5)
        with grammar_context(Grammar(dim_log_mean=mean, dim_log_std=0.3), np.random.default_rng(6)):
            out += [uniform(rng, 1.0, 2.0) for _ in range(200)]
    zs = np.random.default_rng(6).standard_normal(200)
    base = np.random.default_rng(5).uniform(1.0, 2.0, 200)
    np.testing.assert_allclose(lo_values, base * np.exp(-0.2 + 0.3 * zs), atol=6e-5)
    np.testing.assert_allclose(np.array(hi_values) / np.array(lo_values), math.exp(0.4), rtol=2e-3)


def test_option_logit_shifts_coin_probabilities():
    def rate(p: float, logit: float, n: int = 20_000) -> float:
        rng = np.random.default_rng(11)
        with grammar_context(Grammar(option_logit=logit), np.random.default_rng(0)):
            return float(np.mean([coin(rng, p) for _ in range(n)]))

    expected = 1.0 / (1.0 + math.exp(-(math.log(0.3 / 0.7) + 2.0)))
    assert rate(0.3, 2.0) == pytest.approx(expected, abs=0.015)
    assert rate(0.3, -4.0) < 0.03
    assert rate(0.0, 4.0) == 0.0 and rate(1.0, -4.0) == 1.0


def test_choice_temperature_flattens_or_sharpens():
    def freqs(t: float, p: list[float] | None, n: int = 20_000) -> np.ndarray:
        rng = np.random.default_rng(12)
        with grammar_context(Grammar(choice_temperature=t), np.random.default_rng(0)):
            draws = [choice(rng, ["a", "b", "c"], p=p) for _ in range(n)]
        return np.array([draws.count(k) / n for k in "abc"])

    p = [0.7, 0.2, 0.1]
    q = np.array(p) ** 0.25
    np.testing.assert_allclose(freqs(4.0, p), q / q.sum(), atol=0.015)
    q = np.array(p) ** 4.0
    np.testing.assert_allclose(freqs(0.25, p), q / q.sum(), atol=0.015)
    np.testing.assert_allclose(freqs(0.25, None), [1 / 3] * 3, atol=0.015)


# --------------------------------------------------------------------------- generate


@pytest.mark.parametrize("category", sorted(GENERATORS))
def test_default_grammar_gives_byte_identical_meshes(category):
    for index in range(3):
        plain = generate(category, index, 0)
        ruled = generate(category, index, 0, grammar=Grammar())
        assert _fingerprint(ruled) == _fingerprint(plain)
        assert ruled.style == plain.style == generate(category, index, 0, grammar=None).style


@pytest.mark.parametrize("category", sorted(GENERATORS))
def test_extreme_grammars_give_valid_meshes(category):
    for grammar, index in itertools.product(EXTREME_GRAMMARS, range(4)):
        model = generate(category, index, 0, grammar=grammar)
        where = f"{category}/{index} {grammar}"
        check_mesh(model.scene, where)
        lo, hi = model.scene.bounds
        assert np.isfinite(model.scene.bounds).all(), where
        assert abs(float(np.linalg.norm(hi - lo)) - 1.0) < 1e-6, where
        np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-6)
        for name, part in model.scene.geometry.items():
            assert len(part.faces) > 0 and np.isfinite(part.vertices).all(), f"{where}: {name}"
            assert part.volume > 0, f"{where}: {name} is flat or inside out"
        assert all(type(v) in (float, int, bool, str) for v in model.style.values())


@pytest.mark.parametrize("category", sorted(GENERATORS))
def test_dim_log_std_changes_the_sampled_dimensions(category):
    plain = generate(category, 1, 0).style
    ruled = generate(category, 1, 0, grammar=Grammar(dim_log_std=0.3)).style
    changed = [k for k, v in plain.items() if isinstance(v, float) and v != 0.0 and ruled.get(k) != v]
    assert changed, f"{category}: no continuous style value changed"


def test_option_logit_makes_optional_parts_more_frequent():
    def true_fraction(logit: float) -> float:
        styles = [generate("chair", i, 0, grammar=Grammar(option_logit=logit)).style for i in range(30)]
        flags = [v for style in styles for v in style.values() if isinstance(v, bool)]
        return float(np.mean(flags))

    assert true_fraction(4.0) > true_fraction(-4.0) + 0.5


def test_grammar_rng_depends_on_seed_category_and_index():
    g = Grammar(dim_log_std=0.5)
    styles = {(s, i): generate("bottle", i, s, grammar=g).style for s in (0, 1) for i in (0, 1)}
    assert generate("bottle", 0, 0, grammar=g).style == styles[(0, 0)]
    assert len({str(v) for v in styles.values()}) == 4


# --------------------------------------------------------------------------- params


def test_procedural_params_grammar():
    assert ProceduralParams().grammar == {}
    assert ProceduralParams().grammar_for("chair") is None
    pp = ProceduralParams(grammar={"chair": {"dim_log_std": 0.2, "option_logit": -1}})
    assert pp.grammar_for("chair") == Grammar(dim_log_std=0.2, option_logit=-1.0)
    assert pp.grammar_for("sofa") is None
    assert ProceduralParams(grammar={"sofa": {}}).grammar_for("sofa") == Grammar()
    with pytest.raises(ValueError, match="unicorn"):
        ProceduralParams(grammar={"unicorn": {}, "chair": {}})
    with pytest.raises(ValueError, match="choice_temprature"):
        ProceduralParams(grammar={"chair": {"choice_temprature": 2.0}})
    # the params bounds are the Grammar's
    for name, (lo, hi) in GRAMMAR_RANGES.items():
        for ok in (lo, hi):
            assert getattr(ProceduralParams(grammar={"bed": {name: ok}}).grammar_for("bed"), name) == ok
        for bad in (lo - 1e-3, hi + 1e-3):
            with pytest.raises(ValueError, match=name):
                ProceduralParams(grammar={"bed": {name: bad}})


def test_params_yaml_grammar_and_dotted_overrides():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert raw["catalog"]["procedural"]["grammar"] == {}
    assert all(parse_params(raw).catalog.procedural.grammar_for(c) is None for c in GENERATORS)
    params = parse_params(apply_overrides(raw, {"catalog.procedural.grammar.chair.dim_log_std": 0.2,
                                                "catalog.procedural.grammar.chair.choice_temperature": 2}))
    assert params.catalog.procedural.grammar_for("chair") == Grammar(dim_log_std=0.2, choice_temperature=2.0)
    with pytest.raises(ParamsError, match=r"catalog\.procedural\.grammar\.chair\.dim_log_std"):
        parse_params(apply_overrides(raw, {"catalog.procedural.grammar.chair.dim_log_std": 0.9}))
    with pytest.raises(ParamsError, match="unicorn"):
        parse_params(apply_overrides(raw, {"catalog.procedural.grammar.unicorn.dim_log_std": 0.1}))


def test_catalog_passes_the_class_grammar():
    def entries(grammar: dict) -> dict:
        p = CatalogParams(procedural=ProceduralParams(categories=("car", "chair"), models_per_category=2,
                                                      heldout_per_category=1, grammar=grammar))
        return {e.model_id: e for e in procedural_entries(p, 0)}

    plain = entries({})
    ruled = entries({"chair": {"dim_log_mean": 0.3, "dim_log_std": 0.2}})
    for model_id in ("proc-car-000", "proc-car-001"):
        assert ruled[model_id].style == plain[model_id].style
        assert ruled[model_id].original_path == plain[model_id].original_path
        assert plain[model_id].original_path == f"procedural://car/{int(model_id[-3:])}?seed=0"
    for model_id in ("proc-chair-000", "proc-chair-001"):
        assert ruled[model_id].style != plain[model_id].style
        assert plain[model_id].original_path.endswith("?seed=0")
        assert ruled[model_id].original_path.endswith(
            "?seed=0&dim_log_mean=0.3&dim_log_std=0.2&option_logit=0.0&choice_temperature=1.0")
