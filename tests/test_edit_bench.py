"""two-stage-eval data: synthetic generator, loader, bad pairs, prompts, score statistics."""

import base64
import json
import math

import numpy as np
import pytest
from scipy import stats

from gpuflows.edit_bench import CATEGORIES, decode_image, load_benchmark
from gpuflows.edit_bench_synth import SIZES, generate_benchmark, is_synthetic
from gpuflows.edit_prompts import load_prompts
from gpuflows.faults import InputError
from gpuflows.score_stats import describe, render_markdown, summarize


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    return generate_benchmark(tmp_path_factory.mktemp("bench"), "smoke", seed=3)


def test_generator_round_trip_and_determinism(smoke, tmp_path):
    res = load_benchmark(smoke)
    assert res.sizes() == SIZES["smoke"] and not res.rejected and is_synthetic(smoke)
    assert decode_image(res.pairs[0]).size == (64, 64)
    again = generate_benchmark(tmp_path / "b", "smoke", seed=3)
    for f in sorted(smoke.rglob("*.*")):
        assert (again / f.relative_to(smoke)).read_bytes() == f.read_bytes(), f
    other = load_benchmark(generate_benchmark(tmp_path / "c", "smoke", seed=4))
    assert other.digest() != res.digest()


def test_full_preset_matches_the_seed_sizes(tmp_path):
    res = load_benchmark(generate_benchmark(tmp_path, "full", seed=0, image_size=16))
    assert res.sizes() == {"physical": 50, "environment": 50, "social": 70, "causal": 50,
                           "referential": 50}  # fmt: skip


def _write(tmp_path, records, name="data.jsonl"):
    p = tmp_path / name
    p.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n")
    return p


def test_bad_pairs_rejected_with_field_and_good_ones_kept(smoke, tmp_path):
    png = (smoke / "images" / "physical-000.png").read_bytes()
    good = {
        "instruction": "make it red",
        "description": "a box",
        "image": base64.b64encode(png).decode(),
    }
    recs = [
        {"pair_id": "ok-1", "category": "物理", **good},  # Chinese name accepted
        {"pair_id": "ok-2", "category": "causal", **good, "image": str(smoke / "images" / "causal-000.png")},
        {"pair_id": "bad-cat", "category": "cosmic", **good},
        {"pair_id": "bad-instr", "category": "social", **good, "instruction": "  "},
        {"pair_id": "bad-b64", "category": "social", **good, "image": "not base64 !!"},
        {"pair_id": "bad-img", "category": "social", **good, "image": base64.b64encode(b"GIF89 junk").decode()},
        {"pair_id": "bad-path", "category": "social", **good, "image": "missing.png"},
        {"category": "social", **good},
    ]  # fmt: skip
    res = load_benchmark(_write(tmp_path, recs))
    assert [p.pair_id for p in res.pairs] == ["ok-1", "ok-2"]
    assert res.pairs[0].category == "physical"
    why = {r.pair_id: (r.field, r.reason) for r in res.rejected}
    assert why["bad-cat"][0] == "category" and "cosmic" in why["bad-cat"][1]
    assert why["bad-instr"][0] == "instruction"
    assert why["bad-b64"][0] == "image" and "base64" in why["bad-b64"][1]
    assert why["bad-img"][0] == "image" and "does not decode" in why["bad-img"][1]
    assert why["bad-path"][0] == "image" and "does not exist" in why["bad-path"][1]
    assert why[None][0] == "pair_id"


def test_load_errors_name_the_problem(tmp_path, smoke):
    with pytest.raises(InputError, match="does not exist"):
        load_benchmark(tmp_path / "nope")
    rec = json.loads((smoke / "social.jsonl").read_text().splitlines()[0])
    rec["image"] = str(smoke / rec["image"])
    with pytest.raises(InputError, match="repeated"):
        load_benchmark(_write(tmp_path, [rec, rec]))
    with pytest.raises(InputError, match="no usable pair"):
        load_benchmark(_write(tmp_path, [{**rec, "instruction": ""}], "x.jsonl"))


def test_prompts_cover_every_category_and_reject_unknown_placeholders(tmp_path):
    ps = load_prompts()
    assert set(ps.prompts) == set(CATEGORIES) and ps.version
    system, user = ps.render("causal", "drop the cup", "a cup")
    assert "drop the cup" in user and "a cup" in user and "Score" in user and system
    bad = tmp_path / "p.yaml"
    text = ps.path and open(ps.path).read()
    bad.write_text(text.replace('"{instruction}"', '"{instr}"', 1))
    with pytest.raises(InputError, match="unknown placeholder"):
        load_prompts(bad)
    bad.write_text(text.replace('version: "', 'old_version: "'))
    with pytest.raises(InputError, match="version"):
        load_prompts(bad)


def test_score_statistics_against_scipy():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, 37)
    d = describe(x, n_failed=2)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert d["ci_low"] == pytest.approx(lo, abs=1e-12) and d["ci_high"] == pytest.approx(
        hi, abs=1e-12
    )
    assert d["std"] == pytest.approx(np.std(x, ddof=1), abs=1e-12) and d["n_failed"] == 2
    one, none = describe([4.0]), describe([], n_failed=3)
    assert one["mean"] == 4.0 and math.isnan(one["std"]) and math.isnan(one["ci_low"])
    assert none["n_scored"] == 0 and math.isnan(none["mean"])
    s = summarize([("physical", 5.0), ("physical", None), ("social", 7.0), ("physical", 6.0)])
    assert list(s) == ["physical", "social", "overall"]
    assert s["physical"]["n_failed"] == 1 and s["overall"]["mean"] == pytest.approx(6.0)
    assert "| overall | 3 | 1 |" in render_markdown(s)
