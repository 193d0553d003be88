"""The sweep-aware engine (gpuflows.pipelines.rqa_sweep.engine) against the NumPy reference
(gpuflows.pipelines.rqa_sweep.rqa).

Tolerance: none. In float64 every backend's histograms and recurrence counts must equal the
reference's integer for integer (computed one eps at a time), and the metrics read from them
must equal ``rqa_metrics`` exactly (NaN where the reference has NaN). The eps grids include
realised pairwise distances, where strict ``<`` must exclude the tie. float32 (torch only):
the flipped-pair count must equal a brute-force float32 vs float64 comparison.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpuflows.pipelines.rqa_sweep import engine as rqa_engine
from gpuflows.pipelines.rqa_sweep import rqa
from gpuflows.pipelines.rqa_sweep.engine import sweep_histograms

torch = pytest.importorskip("torch")

CPU_BACKENDS = ["numba", "numpy", "torch"] if rqa_engine.HAVE_NUMBA else ["numpy", "torch"]


def _signal(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    e = rng.standard_normal(n)
    if kind == "white":
        return e
    if kind == "sine":
        return np.sin(2 * np.pi * np.arange(n) / rng.integers(6, 30)) + 0.05 * e
    if kind == "joint":
        return np.column_stack([np.cumsum(e), np.sin(np.arange(n) / 5.0) + 0.1 * e])
    return np.cumsum(e)  # random walk


def _cases(count: int, seed: int):
    rng = np.random.default_rng(seed)
    kinds = ("white", "sine", "walk", "joint")
    for i in range(count):
        m, tau = int(rng.integers(1, 6)), int(rng.integers(1, 4))
        n_vec = int(rng.integers(30, 401)) if i % 4 else int(rng.integers(30, 80))
        x = _signal(kinds[i % 4], n_vec + (m - 1) * tau, rng)
        metric = rqa.METRICS[i % 3]
        dist = rqa.distance_matrix(rqa.embed(rqa.zscore(x), m, tau), metric)
        off = dist[np.triu_indices(dist.shape[0], 1)]
        ties = rng.choice(off[off > 0], int(rng.integers(2, 9)))  # exact realised distances
        rounded = np.round(rng.uniform(0.02, 1.5 * np.median(off), int(rng.integers(3, 9))), 2)
        eps = np.concatenate([ties, rounded[rounded > 0]])
        yield x, m, tau, eps, metric, (0, 1, 3)[i % 3]


def _reference(x, m, tau, eps, metric, theiler):
    return [
        rqa.rqa_metrics(x, m, tau, e, 2, metric=metric, theiler=theiler) for e in np.unique(eps)
    ]


def _assert_same(h, ref):
    assert h.eps.size == len(ref)
    for e, r in enumerate(ref):
        assert h.N == r["N"]
        np.testing.assert_array_equal(h.P_d[e], r["P_d"], err_msg=f"P_d eps={h.eps[e]}")
        np.testing.assert_array_equal(h.P_v[e], r["P_v"], err_msg=f"P_v eps={h.eps[e]}")
        assert h.n_recurrences[e] == round(r["RR"] * r["N"] ** 2)


def _same_metrics(a: dict, b: dict) -> bool:
    for key in ("RR", "DET", "L_max", "L_mean", "DIV", "ENT", "LAM", "TT", "V_max"):
        x, y = a[key], b[key]
        if not (x == y or (math.isnan(x) and math.isnan(y))):
            return False
    return True


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_backend_matches_reference_histograms(seed):
    for x, m, tau, eps, metric, theiler in _cases(12, seed):
        ref = _reference(x, m, tau, eps, metric, theiler)
        for backend in CPU_BACKENDS:
            h = sweep_histograms(x, m, tau, eps, metric=metric, theiler=theiler, backend=backend)
            assert h.dtype == "float64" and h.flipped_pairs is None
            _assert_same(h, ref)


def test_tiling_and_recompute_paths_match_reference(monkeypatch):
    """Small torch tiles (Theiler window across tile edges) and the no-Q-matrix paths."""
    cases = list(_cases(6, seed=11))
    refs = [_reference(*c) for c in cases]
    for (x, m, tau, eps, metric, theiler), ref in zip(cases, refs, strict=True):
        for tile in (1, 2, 7):
            h = sweep_histograms(
                x, m, tau, eps, metric=metric, theiler=theiler, backend="torch", tile=tile
            )
            _assert_same(h, ref)
    monkeypatch.setattr("gpuflows.pipelines.rqa_sweep.engine_torch.QMATRIX_MAX_BYTES", 0)
    monkeypatch.setattr("gpuflows.pipelines.rqa_sweep.engine_numba.QMATRIX_MAX_BYTES", 0)
    for (x, m, tau, eps, metric, theiler), ref in zip(cases, refs, strict=True):
        for backend in CPU_BACKENDS:
            kw = {"tile": 5} if backend == "torch" else {}
            h = sweep_histograms(
                x, m, tau, eps, metric=metric, theiler=theiler, backend=backend, **kw
            )
            _assert_same(h, ref)


@pytest.mark.parametrize("l_min,v_min", [(1, 1), (2, 2), (3, 2), (5, 4)])
def test_metrics_from_sweep_equal_rqa_metrics(l_min, v_min):
    rng = np.random.default_rng(l_min * 10 + v_min)
    x = _signal("sine", 260, rng)
    eps = [0.05, 0.2, 0.4, 0.8, 1.6, 100.0]
    h = sweep_histograms(x, 3, 2, eps, backend=CPU_BACKENDS[0])
    for row in h.metrics(l_min, v_min):
        ref = rqa.rqa_metrics(x, 3, 2, row["eps"], l_min, v_min=v_min)
        assert _same_metrics(row, ref), row["eps"]


def test_edge_cases_tiny_and_huge_eps_constant_series():
    x = np.random.default_rng(0).standard_normal(120)
    for backend in CPU_BACKENDS:
        h = sweep_histograms(x, 2, 1, [1e-12, 1e6], backend=backend)
        N = h.N
        assert h.metrics(2)[0]["L_max"] == 0 and h.n_recurrences[0] == N  # LOI only
        assert h.metrics(2)[1]["L_max"] == N - 1 and h.n_recurrences[1] == N * N
        c = sweep_histograms(np.full(50, 3.0), 1, 1, [0.1], backend=backend)
        assert c.P_v[0, 50] == 50 and c.n_recurrences[0] == 2500  # all zeros: all recurrent


def _float32_flips(x, m, tau, eps, metric):
    """Brute force: R entries (i != j, summed over eps) where float32 and float64 disagree."""
    v64 = rqa.embed(rqa.zscore(x), m, tau)
    d64 = rqa.distance_matrix(v64, metric)
    v32 = v64.astype(np.float32)
    acc = np.zeros((v32.shape[0],) * 2, dtype=np.float32)
    for c in range(v32.shape[1]):  # the reference's order, in float32
        diff = np.abs(v32[:, None, c] - v32[None, :, c])
        if metric == "euclidean":
            acc += diff * diff
        elif metric == "manhattan":
            acc += diff
        else:
            np.maximum(acc, diff, out=acc)
    d32 = np.sqrt(acc) if metric == "euclidean" else acc
    off = ~np.eye(d64.shape[0], dtype=bool)
    per_eps = [int(((d32 < np.float32(e)) != (d64 < e))[off].sum()) for e in np.unique(eps)]
    return per_eps, [d32 < np.float32(e) for e in np.unique(eps)]


def test_float32_flipped_pairs_on_a_constructed_tie():
    # dist 0.1 and eps just above it in float64 (recurrent); both round to the same float32
    # (not recurrent): one pair, two R entries, flips at that eps only
    x = np.array([0.0, 0.1])
    eps = [np.nextafter(0.1, 1.0), 0.5]
    h = sweep_histograms(x, 1, 1, eps, normalize=False, backend="torch", dtype="float32")
    assert h.dtype == "float32"
    assert h.flipped_pairs == 2 and h.flipped_per_eps.tolist() == [2, 0]
    assert h.n_recurrences.tolist() == [2, 4]  # float32 decisions: LOI only, then all
    h64 = sweep_histograms(x, 1, 1, eps, normalize=False, backend="torch")
    assert h64.n_recurrences.tolist() == [4, 4] and h64.flipped_pairs is None


@pytest.mark.parametrize("metric", rqa.METRICS)
def test_float32_flips_match_brute_force(metric):
    rng = np.random.default_rng(7)
    x = _signal("walk", 150, rng)
    d = rqa.distance_matrix(rqa.embed(rqa.zscore(x), 2, 1), metric)
    ties = rng.choice(d[np.triu_indices(d.shape[0], 1)], 10)
    h = sweep_histograms(x, 2, 1, ties, metric=metric, backend="torch", dtype="float32", tile=9)
    flips, r32 = _float32_flips(x, 2, 1, ties, metric)
    assert h.flipped_per_eps.tolist() == flips and h.flipped_pairs == sum(flips)
    assert h.flipped_pairs > 0  # eps equal to float64 distances: rounding decides some
    for e, R in enumerate(r32):  # histograms are the float32 decisions' own
        np.testing.assert_array_equal(h.P_d[e], rqa.diagonal_histogram(R, 1))
        np.testing.assert_array_equal(h.P_v[e], rqa.vertical_histogram(R))
    clear = sweep_histograms(x, 2, 1, [0.25, 0.5], metric=metric, backend="torch", dtype="float32")
    assert clear.flipped_pairs == sum(_float32_flips(x, 2, 1, [0.25, 0.5], metric)[0]) == 0


def test_bad_inputs_fail_before_computing():
    x = np.random.default_rng(0).standard_normal(40)
    with pytest.raises(ValueError, match="eps"):
        sweep_histograms(x, 2, 1, [0.5, 0.0])
    with pytest.raises(ValueError, match="at most 254"):
        sweep_histograms(x, 2, 1, np.linspace(0.1, 1, 300))
    with pytest.raises(ValueError, match="float32"):
        sweep_histograms(x, 2, 1, [0.5], backend="numpy", dtype="float32")
    with pytest.raises(ValueError, match="backend"):
        sweep_histograms(x, 2, 1, [0.5], backend="cupy")
    with pytest.raises(ValueError, match="need at least"):
        sweep_histograms(x[:5], 4, 2, [0.5])
    with pytest.raises(ValueError, match="NaN"):
        sweep_histograms(np.array([1.0, np.nan, 2.0]), 1, 1, [0.5])
    h = sweep_histograms(x, 2, 1, [0.5, 0.1, 0.5], backend="numpy")
    assert h.eps.tolist() == [0.1, 0.5]  # sorted, unique


def test_decision_thresholds_are_exact():
    eps = np.array([1e-300, 0.1, 0.3, 1.0, 2.0, 7.7, 1e150])
    t = rqa_engine.decision_thresholds(eps, "euclidean")
    assert np.all(np.sqrt(t) >= eps)
    assert np.all(np.sqrt(np.nextafter(t, 0)) < eps)
    assert rqa_engine.decision_thresholds(eps, "supremum").tolist() == eps.tolist()


def test_estimate_bytes_and_tile_choice():
    from gpuflows.pipelines.rqa_sweep import engine_torch as rqa_torch

    tile = rqa_torch.choose_tile(5000, 2, 17, 5011, "float64", 2 * 2**30)
    assert 1 <= tile <= 5000
    est = rqa_torch.estimate_bytes(5000, 2, tile, 17, n=5011)
    assert 5000 * 5000 < est <= 2 * 2**30 + 5000 * (5000 + tile) + 4 * 17 * 5001 * 8
    assert rqa_torch.estimate_bytes(5000, 2, tile, 17, dtype="float32") > est - 1
    assert rqa_torch.estimate_bytes(2000, 1, 10, 5) < rqa_torch.estimate_bytes(2000, 1, 20, 5)


@pytest.mark.gpu
def test_torch_cuda_matches_numba_and_cpu():
    rng = np.random.default_rng(3)
    xy = _signal("joint", 2100, rng)
    eps = np.linspace(0.05, 0.85, 17)
    for metric, m, tau in (("euclidean", 3, 2), ("supremum", 1, 1), ("manhattan", 6, 1)):
        cpu = sweep_histograms(xy, m, tau, eps, metric=metric, backend=CPU_BACKENDS[0])
        gpu = sweep_histograms(xy, m, tau, eps, metric=metric, backend="torch", device="cuda")
        assert gpu.backend == "torch-cuda"
        np.testing.assert_array_equal(gpu.P_d, cpu.P_d)
        np.testing.assert_array_equal(gpu.P_v, cpu.P_v)
        np.testing.assert_array_equal(gpu.n_recurrences, cpu.n_recurrences)
        f_gpu = sweep_histograms(
            xy, m, tau, eps, metric=metric, backend="torch", device="cuda", dtype="float32"
        )
        f_cpu = sweep_histograms(
            xy, m, tau, eps, metric=metric, backend="torch", device="cpu", dtype="float32"
        )
        assert f_gpu.flipped_pairs == f_cpu.flipped_pairs
        np.testing.assert_array_equal(f_gpu.P_d, f_cpu.P_d)


@pytest.mark.gpu
@pytest.mark.parametrize("seed", [4, 5])
def test_cuda_backend_identical_to_cpu_and_reference(seed):
    """The GPU path (torch on CUDA, float64) gives the CPU backends' integer histograms."""
    cuda = torch.device("cuda")
    for x, m, tau, eps, metric, theiler in _cases(8, seed):
        gpu = sweep_histograms(
            x, m, tau, eps, metric=metric, theiler=theiler, backend="torch", device=cuda
        )
        assert gpu.backend == "torch-cuda"
        _assert_same(gpu, _reference(x, m, tau, eps, metric, theiler))
        cpu = sweep_histograms(
            x, m, tau, eps, metric=metric, theiler=theiler, backend=CPU_BACKENDS[0]
        )
        assert np.array_equal(gpu.P_d, cpu.P_d) and np.array_equal(gpu.P_v, cpu.P_v)


@pytest.mark.gpu
def test_cuda_float32_flips_match_brute_force():
    rng = np.random.default_rng(11)
    x = rng.standard_normal(150)
    v = rqa.embed(rqa.zscore(x), 2, 1)
    d = rqa.distance_matrix(v, "euclidean")
    ties = rng.choice(d[np.triu_indices(d.shape[0], 1)], 6)
    h = sweep_histograms(
        x, 2, 1, ties, backend="torch", dtype="float32", tile=17, device=torch.device("cuda")
    )
    flips, _ = _float32_flips(x, 2, 1, ties, "euclidean")
    assert h.flipped_per_eps.tolist() == flips
