"""bench/rqa_engine_micro.py names a projected anchor a projection, in the JSON and its summary."""

from __future__ import annotations

import json

from bench import rqa_engine_micro


def test_projected_anchor_is_named_a_projection(tmp_path, capsys):
    out = tmp_path / "micro.json"
    argv = ["--sizes", "120", "240", "--reference-max-n", "120", "--backends", "numpy"]
    rqa_engine_micro.main([*argv, "--n-eps", "3", "--repeats", "3", "--json", str(out)])
    res = json.loads(out.read_text())
    figures = set(res["figures"])
    assert {"reference_N120_s", "reference_N240_projected_s", "numpy_N240_s"} <= figures
    assert res["anchor"]["projected"] is True and "projection" in res["anchor"]["note"]
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "reference PROJECTED" in last and "(1 eps timed x 3)" in last


def test_anchor_timed_in_full_is_not_called_projected(tmp_path, capsys):
    out = tmp_path / "micro.json"
    argv = ["--sizes", "120", "--reference-max-n", "120", "--backends", "numpy", "--n-eps", "3"]
    rqa_engine_micro.main([*argv, "--json", str(out)])
    res = json.loads(out.read_text())
    assert res["anchor"]["projected"] is False and "reference_N120_s" in res["figures"]
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "PROJECTED" not in last and "every eps timed" in last
