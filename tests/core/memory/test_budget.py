"""VRAM budget arithmetic, checked by hand: bytes in, whole-GiB slots out."""

from __future__ import annotations

import math

import pytest

from gpuflows.core.memory.budget import (
    DTYPE_BYTES,
    GIB,
    MIB,
    BudgetError,
    PeakReport,
    VramEstimate,
    card_slots,
    check_fits,
    dtype_bytes,
    estimate_arrays,
    estimate_model,
    gib_slots,
    limit_name,
)


def test_units():
    assert GIB == 1024**3
    assert MIB == 1024**2


# --- gib_slots ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nbytes", "slots"),
    [
        (0, 1),  # every GPU task holds at least one slot
        (1, 1),
        (GIB - 1, 1),
        (GIB, 1),
        (GIB + 1, 2),
        (10 * GIB, 10),
        (10 * GIB + 1, 11),
        (79 * GIB + 512 * MIB, 80),
    ],
)
def test_gib_slots_ceil_and_minimum_one(nbytes, slots):
    assert gib_slots(nbytes) == slots


def test_gib_slots_negative_is_an_error():
    with pytest.raises(BudgetError, match="negative"):
        gib_slots(-1)


def test_vram_estimate_gib_property_uses_gib_slots():
    assert VramEstimate(nbytes=3 * GIB + 1, basis="t").gib == 4
    assert VramEstimate(nbytes=0, basis="t").gib == 1


def test_vram_estimate_rejects_negative_bytes():
    with pytest.raises(ValueError):
        VramEstimate(nbytes=-1, basis="t")


# --- dtype_bytes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("float32", 4),
        ("fp32", 4),
        ("float64", 8),
        ("float16", 2),
        ("bf16", 2),
        ("bfloat16", 2),
        ("torch.bfloat16", 2),
        ("torch.float16", 2),
        ("torch.int64", 8),
        ("numpy.uint8", 1),
        ("BFloat16", 2),
        ("int8", 1),
        ("bool", 1),
        ("fp8", 1),
    ],
)
def test_dtype_bytes_names(name, size):
    assert dtype_bytes(name) == size


def test_dtype_bytes_accepts_real_dtype_objects():
    import numpy as np
    import torch

    assert dtype_bytes(torch.bfloat16) == 2
    assert dtype_bytes(torch.float32) == torch.tensor([], dtype=torch.float32).element_size()
    assert dtype_bytes(np.dtype("float64")) == np.dtype("float64").itemsize


def test_dtype_bytes_unknown_lists_choices():
    with pytest.raises(BudgetError) as ei:
        dtype_bytes("complex64")
    msg = str(ei.value)
    assert "complex64" in msg
    for choice in ("float32", "bf16", "int8"):
        assert f"'{choice}'" in msg


def test_dtype_table_sizes_match_numpy():
    import numpy as np

    for name in ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8"):
        assert DTYPE_BYTES[name] == np.dtype(name).itemsize


# --- estimate_arrays / estimate_model ----------------------------------------------------


def test_estimate_arrays_one_float32_square_is_4_mib_without_margin():
    est = estimate_arrays([((1024, 1024), "float32")], margin=0)
    assert est.nbytes == 4 * MIB == 1024 * 1024 * 4
    assert "(1024, 1024) float32" in est.basis
    assert est.gib == 1


def test_estimate_arrays_default_margin_is_ten_percent():
    est = estimate_arrays([((1024, 1024), "float32")])
    assert est.nbytes == int(4 * MIB * 1.1) == 4613734
    assert "+10% workspace" in est.basis


def test_estimate_arrays_sums_mixed_dtypes():
    est = estimate_arrays(
        [((1024, 1024), "float32"), ((2048,), "bf16"), ((3, 5, 7), "int64")],
        margin=0.5,
        what="matmul",
    )
    raw = 1024 * 1024 * 4 + 2048 * 2 + 3 * 5 * 7 * 8
    assert est.nbytes == int(raw * 1.5)
    assert est.basis.startswith("matmul: ")
    assert "+50% workspace" in est.basis


def test_estimate_arrays_docstring_example():
    # 3 × 8192² float32 = 768 MiB, +10 %
    assert estimate_arrays([((8192, 8192), "float32")] * 3).nbytes == 885837004
    assert estimate_arrays([((8192, 8192), "float32")] * 3).gib == 1


def test_estimate_arrays_empty_is_zero_bytes_one_slot():
    est = estimate_arrays([])
    assert est.nbytes == 0
    assert "none" in est.basis
    assert est.gib == 1


def test_estimate_arrays_accepts_a_generator():
    est = estimate_arrays((((n, n), "float16") for n in (2, 4)), margin=0)
    assert est.nbytes == (4 + 16) * 2


def test_estimate_arrays_negative_margin_is_an_error():
    with pytest.raises(BudgetError, match="margin"):
        estimate_arrays([((1,), "float32")], margin=-0.1)


def test_estimate_arrays_unknown_dtype_is_an_error():
    with pytest.raises(BudgetError, match="unknown"):
        estimate_arrays([((1,), "quaternion")])


def test_estimate_model_7b_bf16_with_20_percent():
    est = estimate_model(7_000_000_000, "bf16")
    assert est.nbytes == 16_800_000_000  # 7e9 × 2 B × 1.2
    assert est.gib == math.ceil(16_800_000_000 / GIB) == 16
    assert "7,000,000,000 params" in est.basis
    assert "+20% activations" in est.basis


def test_estimate_model_custom_margin_and_dtype():
    est = estimate_model(1000, "torch.float32", activation_margin=0, name="tiny")
    assert est.nbytes == 4000
    assert est.basis.startswith("tiny: ")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_params": -1, "dtype": "bf16"},
        {"n_params": 1, "dtype": "bf16", "activation_margin": -0.2},
    ],
)
def test_estimate_model_negative_inputs_are_errors(kwargs):
    with pytest.raises(BudgetError, match="negative"):
        estimate_model(**kwargs)


# --- limit_name / card_slots / check_fits ------------------------------------------------


def test_limit_name_plain():
    assert limit_name(0) == "vram-gpu0"
    assert limit_name(7) == "vram-gpu7"
    assert limit_name(1, prefix="mem-") == "mem-1"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("node01", "node01-vram-gpu2"),
        ("GPU-Box.lab.example", "gpu-box-lab-example-vram-gpu2"),
        ("  Weird Host__Name! ", "weird-host-name-vram-gpu2"),
        ("***", "host-vram-gpu2"),
    ],
)
def test_limit_name_host_prefix_is_sanitised(host, expected):
    name = limit_name(2, host=host)
    assert name == expected


def test_limit_name_negative_index_is_an_error():
    with pytest.raises(BudgetError, match="negative"):
        limit_name(-1)


def test_limit_name_bad_prefix_is_an_error():
    with pytest.raises(BudgetError, match="lowercase"):
        limit_name(0, prefix="VRAM_")


def test_card_slots_80_gib_card():
    assert card_slots(80 * GIB) == 80
    assert card_slots(80 * GIB, reserve_gib=1) == 79
    # a real "80 GB" H100 reports 81559 MiB: floor to 79 GiB, then the reserve
    assert card_slots(81559 * MIB, reserve_gib=1) == 78


def test_card_slots_tiny_card_is_an_error():
    with pytest.raises(BudgetError, match="no slot"):
        card_slots(GIB + 100, reserve_gib=1)
    with pytest.raises(BudgetError, match="no slot"):
        card_slots(512 * MIB)


def test_card_slots_negative_reserve_is_an_error():
    with pytest.raises(BudgetError, match="reserve_gib"):
        card_slots(80 * GIB, reserve_gib=-1)


def test_check_fits_passes_up_to_capacity():
    assert check_fits(1, 79, limit="vram-gpu0") is None
    assert check_fits(79, 79, limit="vram-gpu0") is None


def test_check_fits_too_big_names_limit_and_fix():
    with pytest.raises(BudgetError) as ei:
        check_fits(80, 79, limit="node01-vram-gpu3")
    msg = str(ei.value)
    assert "node01-vram-gpu3" in msg
    assert "80" in msg and "79" in msg
    assert "reduce the batch" in msg


def test_check_fits_zero_request_is_an_error():
    with pytest.raises(BudgetError, match=">= 1 GiB"):
        check_fits(0, 79, limit="vram-gpu0")


# --- PeakReport --------------------------------------------------------------------------


def test_peak_report_prefers_allocator_peaks_over_nvml():
    r = PeakReport(
        estimate_bytes=100, torch_peak_bytes=80, cupy_peak_bytes=120, nvml_used_bytes=500
    )
    assert r.measured_bytes == 120
    assert r.ratio == pytest.approx(1.2)


def test_peak_report_falls_back_to_nvml():
    r = PeakReport(estimate_bytes=200, nvml_used_bytes=50)
    assert r.measured_bytes == 50
    assert r.ratio == pytest.approx(0.25)


def test_peak_report_zero_torch_peak_counts_as_measured():
    r = PeakReport(estimate_bytes=10, torch_peak_bytes=0, nvml_used_bytes=999)
    assert r.measured_bytes == 0
    assert r.ratio == 0


def test_peak_report_without_measurement_or_estimate_has_no_ratio():
    assert PeakReport(estimate_bytes=100).measured_bytes is None
    assert PeakReport(estimate_bytes=100).ratio is None
    assert PeakReport(estimate_bytes=0, torch_peak_bytes=5).ratio is None
