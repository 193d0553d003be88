"""Dataset schema: the generator's output loads back identically; bad input is refused with the
file, row and field named."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from gpuflows.core.faults import InputError
from gpuflows.pipelines.batch_eval.generate import generate, grade
from gpuflows.pipelines.batch_eval.schema import load_dataset, write_dataset


@pytest.fixture(scope="module")
def small():
    return generate(n_train=4, n_test=4, n_candidates=12, seed=3)


def test_generator_is_deterministic_and_round_trips(small, tmp_path):
    again = generate(n_train=4, n_test=4, n_candidates=12, seed=3)
    assert small.digest() == again.digest()
    assert small.digest() != generate(n_train=4, n_test=4, n_candidates=12, seed=4).digest()
    write_dataset(small, tmp_path)
    back = load_dataset(tmp_path)
    assert back.digest() == small.digest()
    assert back.visual.shape == (8 * 12, 32)


def test_relevance_follows_attributes(small):
    lists = small.lists()
    for _, q in small.queries.iterrows():
        idx, rel = lists[q["query_id"]]
        for i, r in zip(idx, rel, strict=True):
            assert r == grade(small.candidates["attributes"].iloc[i], q["constraints"])
    assert grade({"category": "flowers", "colour": "red"}, {"category": "cocktail"}) == 0
    assert (
        grade(
            {"category": "flowers", "colour": "red", "background": "dark"},
            {"category": "flowers", "colour": "red", "background": "white"},
        )
        == 2
    )


def _rows(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def _write(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


@pytest.mark.parametrize(
    "table, edit, expected",
    [
        (
            "queries",
            lambda r: [{**r[0], "extra": 1}, *r[1:]],
            r"queries.jsonl.*field 'extra'.*unknown column",
        ),
        (
            "candidates",
            lambda r: [{k: v for k, v in x.items() if k != "visual"} for x in r],
            r"candidates.jsonl.*field 'visual'.*column missing",
        ),
        (
            "queries",
            lambda r: [r[0], {**r[1], "query_id": r[0]["query_id"]}, *r[2:]],
            r"queries.jsonl, row 1, field 'query_id'.*duplicate id",
        ),
        (
            "judgments",
            lambda r: [r[0], r[1], {**r[2], "relevance": 7}, *r[3:]],
            r"judgments.jsonl, row 2, field 'relevance'.*outside the scale 0..3",
        ),
        (
            "judgments",
            lambda r: [x for x in r if x["query_id"] != "q00003"],
            r"queries.jsonl, row 3, field 'query_id'.*'q00003' has no candidates",
        ),
        (
            "queries",
            lambda r: [r[0], {**r[1], "constraints": {"flavour": "x"}}, *r[2:]],
            r"queries.jsonl, row 1, field 'constraints'.*unknown attribute 'flavour'",
        ),
        (
            "candidates",
            lambda r: [r[0], r[1], r[2], {**r[3], "visual": r[3]["visual"][:5]}, *r[4:]],
            r"candidates.jsonl, row 3, field 'visual'.*width 5 != 32",
        ),
        (
            "candidates",
            lambda r: [r[0], {**r[1], "visual": [float("nan")] * 32}, *r[2:]],
            r"candidates.jsonl, row 1, field 'visual'.*NaN",
        ),
        (
            "judgments",
            lambda r: [r[0], {**r[1], "relevance": None}, *r[2:]],
            r"judgments.jsonl, row 1, field 'relevance'",
        ),
        (
            "judgments",
            lambda r: [r[0], r[0], *r[2:]],
            r"judgments.jsonl, row 1, field 'candidate_id'.*duplicate judgment",
        ),
    ],
)
def test_bad_input_is_located(small, tmp_path, table, edit, expected):
    write_dataset(small, tmp_path)
    path = tmp_path / f"{table}.jsonl"
    _write(path, edit(_rows(path)))
    with pytest.raises(InputError, match=expected):
        load_dataset(tmp_path)


def test_parquet_and_missing_file(small, tmp_path):
    write_dataset(small, tmp_path)
    (tmp_path / "judgments.jsonl").unlink()
    with pytest.raises(InputError, match=r"judgments.jsonl.*missing"):
        load_dataset(tmp_path)
    small.judgments.to_parquet(tmp_path / "judgments.parquet")
    assert load_dataset(tmp_path).digest() == small.digest()
    assert isinstance(load_dataset(tmp_path).judgments, pd.DataFrame)
