"""Step 1 with its VLM behind an endpoint: our server serving the tiny random-weight VLM
(synthetic) gives the local backend's records; the fault responder's 500s are retried and a 400
is isolated to the shard's errors file; bad input and bad endpoints fail before any model time."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gpuflows.core.faults import InputError
from gpuflows.models.llm.faults_server import fault_app, running
from gpuflows.pipelines.factor_pipeline import FactorParams, preflight
from gpuflows.pipelines.factor_pipeline.generate import generate_shards, render
from gpuflows.pipelines.factor_pipeline.probing import (
    error_kinds,
    load_vlm,
    probe_group,
    write_manifest,
)
from gpuflows.pipelines.factor_pipeline.schema import validate_shards


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:  # the tiny VLM is built in this module's folder
        mp.setenv("GPUFLOWS_RESULTS_DIR", str(tmp_path_factory.mktemp("results")))
        return load_vlm("tiny-vlm")


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_endpoint_backend_through_our_server_equals_local(engine, tmp_path):
    from gpuflows.serve import make_app

    infos = validate_shards(generate_shards(tmp_path / "d", n_images=6, n_shards=2))
    local = probe_group(infos, tmp_path / "local", batch_size=3, model=engine, max_new_tokens=4)
    app = make_app(engine, "tiny-vlm", max_batch=8, wait_s=0.05)
    with running(app) as url:
        remote = probe_group(
            infos,
            tmp_path / "remote",
            batch_size=3,
            max_new_tokens=4,
            backend="endpoint",
            endpoint_url=url,
            served_model="tiny-vlm",
        )
    assert remote["images"] == local["images"] == 6 and remote["errors"] == 0
    assert remote["backend_record"]["counts"]["calls"] == 18  # 3 calls per image
    assert max(app.state.batcher.batch_sizes) > 1  # a stage's calls shared an engine batch
    for name in ("shard-00000.jsonl", "shard-00001.jsonl"):
        a, b = _lines(tmp_path / "local" / name), _lines(tmp_path / "remote" / name)
        keys = ("id", "prediction", "completion", "verify", "failure_key", "attempts")
        assert [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b]
        assert all(r["attempts"] == 3 for r in b)
    assert not remote["synthetic_model"]  # an endpoint's weights are not judged from here


def _shard(path, labels):
    rows = {"id": [f"r{i}" for i in range(len(labels))], "label": labels}
    rng = random.Random(0)
    rows["image"] = [render("red", "circle", 16 + i, rng) for i in range(len(labels))]
    pq.write_table(pa.table(rows), path)
    return path


def test_faults_retried_and_a_400_isolated_to_errors(tmp_path):
    (tmp_path / "d").mkdir()
    shard = _shard(
        tmp_path / "d" / "s.parquet", ["red circle", "red [[500x2]] circle", "red [[400]] circle"]
    )
    infos = validate_shards([shard])
    app = fault_app(0.0)
    with running(app) as url:
        rec = probe_group(
            infos,
            tmp_path / "p",
            batch_size=3,
            backend="endpoint",
            endpoint_url=url,
            served_model="m",
            concurrency=2,
        )
    assert rec["images"] == 3 and rec["errors"] == 1  # the shard finished, one record isolated
    assert app.state.stats["in_flight_max"] <= 2
    ok = {r["id"]: r for r in _lines(tmp_path / "p" / "s.jsonl")}
    assert sorted(ok) == ["r0", "r1"]
    assert ok["r0"]["attempts"] == 3 and ok["r1"]["attempts"] == 5  # verify: 2 x 500, then 200
    (err,) = _lines(tmp_path / "p" / "errors" / "s.jsonl")
    assert err["id"] == "r2" and err["stage"] == "verify" and err["status"] == 400
    assert err["kind"] == "http_status" and "not retried" in err["reason"]
    assert err["attempts"] == 3  # predict + complete answered, verify refused once
    done = json.loads((tmp_path / "p" / "s.done.json").read_text())
    assert done["rows"] == 2 and done["errors"] == 1
    manifest = json.loads(write_manifest(tmp_path / "p", infos, {}).read_text())
    assert manifest["rows"] == 2 and manifest["errors"] == 1
    assert error_kinds(tmp_path / "p", infos) == {"verify:http_status": 1}


def test_bad_endpoint_and_params_refused_before_model_time(tmp_path):
    with pytest.raises(ValueError, match="probe_served_model"):
        FactorParams(probe_endpoint_url=["http://127.0.0.1:9/v1"])
    p = FactorParams(probe_endpoint_url=["http://127.0.0.1:9/v1"], probe_served_model="v")
    assert p.probe_backend == "endpoint" and p.qa_backend == "local"
    with pytest.raises(ValueError, match="probe_endpoint_url"):
        FactorParams(probe_backend="endpoint")
    with pytest.raises(InputError, match="unreachable"):
        preflight(["http://127.0.0.1:9/v1"], "v", timeout_s=1)


def test_unreadable_image_and_missing_column_fail_before_the_model(tmp_path):
    (tmp_path / "a").mkdir()
    pq.write_table(
        pa.table(
            {
                "id": ["x", "y"],
                "label": ["red circle"] * 2,
                "image": [
                    render("red", "circle", 9, random.Random(0)),
                    b"not an image",
                ],
            }
        ),
        tmp_path / "a" / "s.parquet",
    )
    with pytest.raises(
        InputError, match=r"shard s.parquet row 1 \(id 'y'\): image does not decode"
    ):
        validate_shards([tmp_path / "a" / "s.parquet"])
    (tmp_path / "b").mkdir()
    pq.write_table(pa.table({"id": ["x"], "image_path": ["x.png"]}), tmp_path / "b" / "s.parquet")
    with pytest.raises(InputError, match=r"missing column\(s\) \['label'\]"):
        validate_shards([tmp_path / "b" / "s.parquet"])


@pytest.mark.slow  # a Prefect run of step 1 against our server (flow wiring, CLI options)
def test_cli_probe_step_against_our_vlm_server(prefect_harness, engine, tmp_path):
    from flows.factor_pipeline import main
    from gpuflows.serve import make_app

    app = make_app(engine, "tiny-vlm", max_batch=8, wait_s=0.05)
    with running(app) as url:
        rc = main(
            ["--step", "probe", "--probe-endpoint-url", url, "--probe-served-model", "tiny-vlm"]
            + ["--out-dir", str(tmp_path / "D"), "--n-images", "4", "--n-shards", "2"]
            + ["--failure-batch-size", "2", "--vlm-max-new-tokens", "3"]
        )
    assert rc == 0
    manifest = json.loads((tmp_path / "D" / "probe" / "manifest.json").read_text())
    assert manifest["rows"] == 4 and manifest["backend"] == "endpoint"
    assert manifest["vlm"] == "tiny-vlm" and sum(app.state.batcher.batch_sizes) == 12
