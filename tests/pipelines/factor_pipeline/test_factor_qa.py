"""Step 3 against the fault-injecting responder (real HTTP on 127.0.0.1): retries, Retry-After,
timeouts, malformed JSON, slow answers, isolation, in-flight counted at the server, exactly once
with and without a SIGKILL, and bad input refused before any request."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from gpuflows.core.faults import InputError
from gpuflows.models.llm.faults_server import fault_app, running
from gpuflows.pipelines.factor_pipeline.outcomes import check_exactly_once
from gpuflows.pipelines.factor_pipeline.qa import parse_qa, qa_step

OK = "Q: what is it? A: a dog."  # the responder echoes the last 24 characters


def _write(path, prompts):
    path.write_text(
        "".join(json.dumps({"id": f"r{i}", "prompt": p}) + "\n" for i, p in enumerate(prompts))
    )
    return {f"r{i}" for i in range(len(prompts))}


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_parse_qa():
    assert parse_qa("Q: why red?\nA: paint.") == ("why red?", "paint.")
    assert parse_qa('{"question": "q?", "answer": "a"}') == ("q?", "a")
    with pytest.raises(ValueError, match="no 'Q: ... A: ...'"):
        parse_qa("just words")


def test_faults_isolated_retried_and_counted(tmp_path):
    prompts = [f"case {i} {OK}" for i in range(30)]
    prompts[0] = f"[[500x2]] {OK}"
    prompts[1] = f"[[429x1 ra=0.3]] {OK}"
    prompts[2] = f"[[timeoutx1]] {OK}"
    prompts[3] = f"[[malformed]] {OK}"
    prompts[4] = f"[[slow=0.3]] {OK}"
    prompts[5] = "[[400]] no answer format here"
    prompts[6] = "answers without the format"
    prompts[7] = f"[[500x9]] {OK}"  # more failures than attempts
    ids = _write(tmp_path / "in.jsonl", prompts)
    app = fault_app(latency_s=0.05, hang_s=3.0)
    with running(app) as url:
        out = qa_step(
            tmp_path / "in.jsonl",
            tmp_path / "out",
            urls=[url],
            served_model="m",
            concurrency=3,
            batch_size=10,
            max_attempts=4,
            timeout_s=1.0,
        )
        stats = app.state.stats
        # counted at the server: the client's 3, plus the one attempt it abandoned on timeout
        # (the server still sleeps on it); test_two_endpoints_each_bounded has no timeouts
        assert stats["in_flight_max"] <= 3 + 1
        attempts = {p: len(t) for p, t in stats["attempts"].items()}
    assert check_exactly_once(tmp_path / "out", ids)["missing"] == []
    assert check_exactly_once(tmp_path / "out", ids)["duplicated"] == []
    qa = {r["id"]: r for r in _lines(tmp_path / "out" / "qa.jsonl")}
    err = {r["id"]: r for r in _lines(tmp_path / "out" / "errors.jsonl")}
    assert set(err) == {"r3", "r5", "r6", "r7"}
    assert qa["r0"]["attempts"] == 3 and qa["r1"]["attempts"] == 2 and qa["r2"]["attempts"] == 2
    assert qa["r0"]["question"] == "what is it?" and qa["r0"]["answer"] == "a dog."
    t429 = stats["attempts"][prompts[1]]
    assert t429[1] - t429[0] >= 0.29  # Retry-After honoured
    assert err["r3"]["kind"] == "bad_response" and err["r5"]["status"] == 400
    assert err["r5"]["attempts"] == 1 and attempts[prompts[5]] == 1  # 400 never retried
    assert err["r6"]["kind"] == "unparsable" and err["r7"]["attempts"] == 4
    assert out["qa"] == 26 and out["errors"] == 4
    # a re-run of finished work sends nothing
    with running(fault_app()) as url:
        again = qa_step(tmp_path / "in.jsonl", tmp_path / "out", urls=[url], served_model="m")
    assert again["sent_now"] == 0 and again["skipped_with_outcome"] == 30


def test_two_endpoints_each_bounded(tmp_path):
    ids = _write(tmp_path / "in.jsonl", [f"{i} [[slow=0.1]] {OK}" for i in range(40)])
    a, b = fault_app(0.02), fault_app(0.02)
    with running(a) as ua, running(b) as ub:
        qa_step(
            tmp_path / "in.jsonl",
            tmp_path / "o",
            urls=[ua, ub],
            served_model="m",
            num_gpus=2,
            concurrency=4,
            batch_size=40,
        )
    assert a.state.stats["requests"] == b.state.stats["requests"] == 20
    assert a.state.stats["in_flight_max"] == b.state.stats["in_flight_max"] == 4
    assert check_exactly_once(tmp_path / "o", ids)["outcomes"] == 40


_CHILD = """
import sys
from gpuflows.pipelines.factor_pipeline.qa import qa_step
qa_step(sys.argv[1], sys.argv[2], urls=[sys.argv[3]], served_model="m", concurrency=4,
        batch_size=8)
"""


def test_sigkill_mid_run_then_rerun_exactly_once(tmp_path):
    prompts = [f"{i} {OK}" if i % 7 else f"{i} no format" for i in range(80)]
    ids = _write(tmp_path / "in.jsonl", prompts)
    out = tmp_path / "out"
    app = fault_app(latency_s=0.1)
    with running(app) as url:
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(tmp_path / "in.jsonl"), str(out), url]
        )
        deadline = time.monotonic() + 60
        while len(_lines(out / "qa.jsonl")) + len(_lines(out / "errors.jsonl")) < 20:
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        # a write cut by the kill: a torn last line for a record with no outcome yet
        before = check_exactly_once(out, ids)
        assert 20 <= before["outcomes"] < 80 and before["duplicated"] == []
        torn = next(i for i in sorted(ids) if i in before["missing"])
        with open(out / "qa.jsonl", "ab") as f:
            f.write(b'{"id": "' + torn.encode() + b'", "quest')
        app.state.stats["attempts"].clear()
        again = qa_step(tmp_path / "in.jsonl", out, urls=[url], served_model="m", concurrency=4)
        resent = {p.split()[0] for p in app.state.stats["attempts"]}
    after = check_exactly_once(out, ids)
    assert after == {"missing": [], "extra": [], "duplicated": [], "outcomes": 80}
    assert again["torn_lines_repaired"] == 1
    assert again["sent_now"] == 80 - before["outcomes"]
    done_before = ids - set(before["missing"])
    assert not {f"r{n}" for n in resent} & done_before  # nothing with an outcome was re-sent
    assert len(_lines(out / "errors.jsonl")) == len([p for p in prompts if "no format" in p])


def test_bad_input_refused_before_any_request(tmp_path):
    app = fault_app()
    with running(app) as url:
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n')
        with pytest.raises(
            InputError, match="bad.jsonl line 2: duplicate id 'a' \\(first on line 1\\)"
        ):
            qa_step(bad, tmp_path / "o", urls=[url], served_model="m")
        bad.write_text('{"id": "a", "prompt": "x"}\n{oops\n')
        with pytest.raises(InputError, match="bad.jsonl line 2: not JSON"):
            qa_step(bad, tmp_path / "o", urls=[url], served_model="m")
        assert app.state.stats["requests"] == 0
    good = tmp_path / "good.jsonl"
    _write(good, [OK])
    with pytest.raises(InputError, match="endpoint_url='http://127.0.0.1:9/v1' is unreachable"):
        qa_step(good, tmp_path / "o", urls=["http://127.0.0.1:9/v1"], served_model="m")
    assert not (tmp_path / "o").exists()  # nothing written before the checks pass
