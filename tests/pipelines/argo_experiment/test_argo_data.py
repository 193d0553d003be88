"""Question loaders: ORAN-Bench-13K rows excluded and counted, located errors, our schema."""

from __future__ import annotations

import json

import pytest

from gpuflows.core.faults import InputError
from gpuflows.pipelines.argo_experiment.data import load_jsonl, load_oran_file, load_questions
from gpuflows.pipelines.argo_experiment.synth import generate, load_synthetic

GOOD = ["What does E2 connect?", ["1. RIC and E2 nodes", "2. UE", "3. core", "4. SMO"], "1"]


def _oran(tmp_path, rows, name="fin_H.json"):
    path = tmp_path / name
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_published_defects_are_excluded_and_counted(tmp_path):
    rows = [
        GOOD,
        ["Five options?", ["1. a", "2. b", "3. c", "4. d", "5. e"], "5"],  # options_not_4
        ["Three?", ["1. a", "2. b", "3. c"], "2"],  # options_not_4
        ["Answer six?", ["1. a", "2. b", "3. c", "4. d"], "6"],  # answer_out_of_range
        ["what  does e2 CONNECT?", ["1. x", "2. y", "3. z", "4. w"], "2"],  # duplicate (folded)
        ["Another one?", ["1. a", "2. b", "3. c", "4. d"], "4"],
    ]
    qs = load_oran_file(_oran(tmp_path, rows))
    assert [q.question for q in qs.questions] == ["What does E2 connect?", "Another one?"]
    assert qs.excluded == {"options_not_4": 2, "answer_out_of_range": 1, "duplicate_question": 1}
    assert qs.rows_read == 6 and qs.questions[0].difficulty == "hard"
    assert qs.questions[0].options[0] == "RIC and E2 nodes"  # "1. " numbering stripped
    assert qs.questions[1].answer == 4
    # deterministic: the same file gives the same kept set and digest
    assert load_oran_file(tmp_path / "fin_H.json").digest == qs.digest


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("{not json", "fin_E.json:2: not JSON"),
        (json.dumps({"q": 1}), "fin_E.json:2: expected a 3-element array"),
        (json.dumps([1, ["1. a", "2. b", "3. c", "4. d"], "1"]), "fin_E.json:2: the question"),
        (json.dumps(["q", "1. a", "1"]), "fin_E.json:2: the options"),
    ],
)
def test_other_bad_rows_get_located_errors(tmp_path, line, words):
    path = _oran(tmp_path, [GOOD, line], name="fin_E.json")
    with pytest.raises(InputError, match=words.replace(".", r"\.")):
        load_oran_file(path)


def test_unknown_oran_file_name_says_how_to_name_it(tmp_path):
    with pytest.raises(InputError, match="fin_E.json, fin_M.json or fin_H.json"):
        load_oran_file(_oran(tmp_path, [GOOD], name="oran.json"))


def test_folder_of_oran_files_merges_counts(tmp_path):
    _oran(tmp_path, [GOOD], name="fin_E.json")
    _oran(tmp_path, [GOOD, ["Q?", ["1. a"], "1"]], name="fin_M.json")
    qs = load_questions(tmp_path)
    assert [q.difficulty for q in qs.questions] == ["easy", "medium"]
    assert qs.excluded == {"options_not_4": 1}
    assert set(qs.per_file) == {"fin_E.json", "fin_M.json"}


def _jsonl(tmp_path, objs):
    path = tmp_path / "qs.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path


ROW = {
    "id": "a",
    "question": "Q?",
    "options": ["x", "y", "z", "w"],
    "answer": 2,
    "difficulty": "easy",
}


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ({"answer": 5}, "answer 5 but only 4 options"),
        ({"difficulty": "extreme"}, "field 'difficulty'"),
        ({"options": ["only"]}, "field 'options'"),
        ({"extra": 1}, "field 'extra'"),
        ({"id": "a"}, "id 'a' already used on line 1"),
    ],
)
def test_jsonl_schema_errors_name_line_and_field(tmp_path, bad, words):
    second = {**ROW, "id": "b", "question": "Other?"} | bad
    with pytest.raises(InputError, match=f"qs.jsonl:2: .*{words}"):
        load_jsonl(_jsonl(tmp_path, [ROW, second]))


def test_jsonl_duplicates_excluded_and_digit_answers_accepted(tmp_path):
    rows = [ROW, {**ROW, "id": "b", "question": " q? "}, {**ROW, "id": "c", "answer": "3"}]
    rows[2]["question"] = "New?"
    qs = load_jsonl(_jsonl(tmp_path, rows))
    assert [q.id for q in qs.questions] == ["a", "c"] and qs.questions[1].answer == 3
    assert qs.excluded == {"duplicate_question": 1}


def test_missing_or_unknown_paths(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        load_questions(tmp_path / "nope.jsonl")
    (tmp_path / "q.csv").write_text("a,b\n")
    with pytest.raises(InputError, match="use a .jsonl file"):
        load_questions(tmp_path / "q.csv")
    with pytest.raises(InputError, match="holds none of fin_E.json"):
        load_questions(tmp_path)


def test_synthetic_facts_live_only_in_the_corpus(tmp_path):
    questions, paras = generate(3, seed=1)
    corpus = " ".join(t for _, t in paras)
    for q in questions:
        right = q.options[q.answer - 1]
        assert right in corpus  # the answer is stated in the corpus ...
        assert right not in q.question  # ... and not in the question
        assert len(set(q.options)) == len(q.options)
    qs = load_synthetic(tmp_path, 3, seed=1)
    assert qs.synthetic and len(qs.questions) == 9
    assert load_synthetic(tmp_path, 3, seed=1).digest == qs.digest
