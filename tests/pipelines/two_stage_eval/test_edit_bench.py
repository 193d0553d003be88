"""two-stage-eval benchmark: synthetic generator, file formats, loader, bad pairs, digests."""

import base64
import json
from pathlib import Path

import pytest
from PIL import Image

from gpuflows.core.faults import InputError
from gpuflows.pipelines.two_stage_eval.bench import (
    CATEGORIES,
    Category,
    EditPair,
    PairError,
    benchmark_digest,
    canonical_category,
    decode_image,
    load_benchmark,
    pair_digest,
    validate_pairs,
)
from gpuflows.pipelines.two_stage_eval.synth import (
    PRESETS,
    generate_benchmark,
    is_synthetic,
    read_manifest,
)
from tests.fixtures.images import truncated_jpeg


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    return generate_benchmark(tmp_path_factory.mktemp("bench"), preset="smoke", seed=3)


@pytest.fixture(scope="module")
def png(smoke) -> bytes:
    return (smoke / "images" / "physical-000.png").read_bytes()


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()
    }


def _write(path: Path, records: list, lines: list[str] = ()) -> Path:
    body = [json.dumps(r, ensure_ascii=False) for r in records] + list(lines)
    path.write_text("\n".join(body) + "\n", encoding="utf-8")
    return path


def test_smoke_round_trip(smoke):
    res = load_benchmark(smoke)
    assert len(res) == 10 and not res.rejected and is_synthetic(smoke)
    assert res.sizes() == dict.fromkeys(CATEGORIES, 2)
    assert [p.category for p in res.pairs[::2]] == list(Category)  # category order kept
    assert res.digest() == read_manifest(smoke)["digest"] == benchmark_digest(res.pairs)
    im = decode_image(res.pairs[0])
    assert im.size == (64, 64) and im.mode == "RGB"
    assert all(p.instruction and p.description for p in res.pairs)


def test_full_preset_has_the_seed_sizes(tmp_path):
    res = load_benchmark(generate_benchmark(tmp_path, preset="full", seed=0, image_size=16))
    assert len(res) == 270 and not res.rejected
    assert (
        res.sizes()
        == PRESETS["full"]
        == {"physical": 50, "environment": 50, "social": 70, "causal": 50, "referential": 50}
    )


def test_generator_is_byte_identical_per_seed(smoke, tmp_path):
    again = generate_benchmark(tmp_path / "a", preset="smoke", seed=3)
    assert _files(again) == _files(smoke)
    other = generate_benchmark(tmp_path / "b", preset="smoke", seed=4)
    assert read_manifest(other)["digest"] != read_manifest(smoke)["digest"]
    # a pair is the same whichever preset holds it
    full = generate_benchmark(tmp_path / "c", "full", seed=3, image_size=64)
    assert (full / "images/social-001.png").read_bytes() == (
        smoke / "images/social-001.png"
    ).read_bytes()
    with pytest.raises(InputError, match="preset"):
        generate_benchmark(tmp_path / "d", preset="huge")


def test_bad_pairs_are_rejected_with_pair_and_field(smoke, png, tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(png)
    b64 = base64.b64encode(png).decode()
    good = {"instruction": "make it red", "description": "a box", "image": b64}
    cut_jpeg = truncated_jpeg()
    recs = [
        {"pair_id": "ok-b64", "category": "物理", **good},
        {"pair_id": "ok-path", "category": "causal", **good, "image": "imgs/a.png"},
        {
            "pair_id": "ok-url",
            "category": "Social",
            **good,
            "image": "data:image/png;base64," + b64,
        },
        {"pair_id": "bad-cat", "category": "cosmic", **good},
        {"pair_id": "no-cat", **good},
        {"pair_id": "bad-instr", "category": "social", **good, "instruction": "  "},
        {"pair_id": "no-instr", "category": "social", "image": b64},
        {"pair_id": "bad-b64", "category": "social", **good, "image": "not base64 at all !!"},
        {
            "pair_id": "bad-img",
            "category": "social",
            **good,
            "image": base64.b64encode(b"GIF89 junk").decode(),
        },
        {
            "pair_id": "cut-png",
            "category": "social",
            **good,
            "image": base64.b64encode(png[:60]).decode(),
        },
        {
            "pair_id": "cut-jpeg",
            "category": "social",
            **good,
            "image": base64.b64encode(cut_jpeg).decode(),
        },
        {"pair_id": "bad-path", "category": "social", **good, "image": "imgs/missing.png"},
        {"category": "social", **good},
        ["not", "an", "object"],
    ]
    res = load_benchmark(_write(tmp_path / "data.jsonl", recs, ["{broken json"]))
    assert [p.pair_id for p in res.pairs] == ["ok-b64", "ok-path", "ok-url"]
    assert [p.category for p in res.pairs] == ["physical", "causal", "social"]
    assert Path(res.pairs[1].image) == tmp_path / "imgs" / "a.png"  # resolved against the file
    why = {r.pair_id: r for r in res.rejected if r.pair_id}
    expect = {
        "bad-cat": ("category", "cosmic"),
        "no-cat": ("category", "missing"),
        "bad-instr": ("instruction", "empty"),
        "no-instr": ("instruction", "missing"),
        "bad-b64": ("image", "base64"),
        "bad-img": ("image", "does not decode"),
        "cut-png": ("image", "does not decode"),
        "cut-jpeg": ("image", "truncated"),
        "bad-path": ("image", "does not exist"),
    }
    for pid, (fld, text) in expect.items():
        r = why[pid]
        assert r.field == fld and text in r.reason, (pid, r)
        assert pid in str(r) and fld in str(r) and r.where.startswith("data.jsonl:")
    anonymous = sorted((r.field, r.where) for r in res.rejected if r.pair_id is None)
    assert anonymous == [
        ("pair_id", "data.jsonl:13"),
        ("record", "data.jsonl:14"),
        ("record", "data.jsonl:15"),
    ]
    assert "not valid JSON" in next(r.reason for r in res.rejected if r.where == "data.jsonl:15")


def test_folder_per_category_and_json_shapes(png, tmp_path):
    (tmp_path / "img.png").write_bytes(png)
    rec = {"image": "img.png", "instruction": "do it", "description": "d"}
    _write(
        tmp_path / "物理.jsonl",
        [{"pair_id": "p1", **rec}, {"pair_id": "p2", "category": "social", **rec}],
    )
    (tmp_path / "social.json").write_text(json.dumps([{"pair_id": "s1", **rec}]))
    (tmp_path / "extra.json").write_text(
        json.dumps({"因果": [{"pair_id": "c1", **rec}], "referential": [{"pair_id": "r1", **rec}]})
    )
    (tmp_path / "manifest.json").write_text('{"synthetic": false}')  # not data
    res = load_benchmark(tmp_path)
    assert [(p.pair_id, p.category) for p in res.pairs] == [
        ("p1", "physical"),
        ("s1", "social"),
        ("c1", "causal"),
        ("r1", "referential"),
    ]
    assert [(r.pair_id, r.field) for r in res.rejected] == [("p2", "category")]
    single = tmp_path / "one" / "bench.json"
    single.parent.mkdir()
    single.write_text(
        json.dumps(
            {
                "pairs": [
                    {"pair_id": "x", "category": "环境", **rec, "image": str(tmp_path / "img.png")}
                ]
            }
        )
    )
    assert [p.category for p in load_benchmark(single).pairs] == ["environment"]


def test_load_raises_only_when_nothing_is_usable_or_ids_repeat(smoke, png, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_benchmark(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .jsonl or .json"):
        load_benchmark(tmp_path / "empty")
    (tmp_path / "bad.json").write_text("[{oops")
    with pytest.raises(InputError, match=r"bad\.json.*cannot read"):
        load_benchmark(tmp_path / "bad.json")
    rec = {
        "pair_id": "dup-1",
        "category": "social",
        "instruction": "x",
        "image": base64.b64encode(png).decode(),
    }
    with pytest.raises(InputError, match=r"repeated: 'dup-1' at d\.jsonl:1, d\.jsonl:3"):
        load_benchmark(_write(tmp_path / "d.jsonl", [rec, {**rec, "pair_id": "ok"}, rec]))
    with pytest.raises(InputError, match=r"no usable pair.*'e1'.*instruction"):
        load_benchmark(_write(tmp_path / "e.jsonl", [{**rec, "pair_id": "e1", "instruction": ""}]))


def test_decode_and_validate_name_the_pair(png, tmp_path):
    bad = EditPair(
        pair_id="b1", category="指代", image=base64.b64encode(b"nope").decode(), instruction="x"
    )
    missing = EditPair(
        pair_id="m1", category="social", image=str(tmp_path / "no.png"), instruction="x"
    )
    for pair, text in ((bad, "does not decode"), (missing, "does not exist")):
        with pytest.raises(PairError, match=f"pair '{pair.pair_id}': image: .*{text}") as exc:
            decode_image(pair)
        assert isinstance(exc.value, InputError) and exc.value.field == "image"
    ok = EditPair(
        pair_id="g1", category="causal", image=base64.b64encode(png).decode(), instruction="x"
    )
    good, rejected = validate_pairs([bad, ok, missing])
    assert good == [ok] and [(r.pair_id, r.field) for r in rejected] == [
        ("b1", "image"),
        ("m1", "image"),
    ]


def test_categories_accept_chinese_names():
    assert [Category(z) for z in "物理 环境 社会 因果 指代".split()] == list(Category)
    assert Category(" Physical ") is Category.physical and canonical_category("cosmic") is None
    pair = EditPair(pair_id="a", category="社会", image="x.png", instruction="x")
    assert pair.category == "social" and pair.model_dump(mode="json")["category"] == "social"


def test_pair_digest_covers_image_bytes_not_location(png, tmp_path):
    (tmp_path / "a.png").write_bytes(png)
    as_path = EditPair(
        pair_id="a", category="social", image=str(tmp_path / "a.png"), instruction="x"
    )
    as_b64 = as_path.model_copy(update={"image": base64.b64encode(png).decode()})
    assert pair_digest(as_path) == pair_digest(as_b64) == as_path.digest()
    assert pair_digest(as_path.model_copy(update={"instruction": "y"})) != pair_digest(as_path)
    other = Image.new("RGB", (4, 4))
    other.save(tmp_path / "b.png")
    moved = as_path.model_copy(update={"image": str(tmp_path / "b.png")})
    assert pair_digest(moved) != pair_digest(as_path)
    assert benchmark_digest([as_path, moved]) != benchmark_digest([moved, as_path])
