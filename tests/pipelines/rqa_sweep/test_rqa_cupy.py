"""The CuPy RawKernel backend against the CPU oracle, integer for integer.

On a GPU (``gpu`` marker): the real CuPy backend. Everywhere: the kernel source itself, compiled
by the host's C++ compiler under a shim (one POSIX thread per CUDA thread, a barrier for
``__syncthreads``, real atomics) and launched by ``sweep_cupy``'s own host code through a stand-in
``cupy`` module, so the kernels' logic and the launch arguments are checked without a GPU. What
the shim cannot check is NVRTC compilation and device arithmetic: the ``gpu`` tests do.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest

import gpuflows.pipelines.rqa_sweep.engine_cupy as rqa_cupy
from gpuflows.pipelines.rqa_sweep import engine
from gpuflows.pipelines.rqa_sweep.kernels import MAX_EPS

CASES = [  # (d, m, tau, metric, theiler, eps): 1-D and joint series, every metric, w = 0/1/3
    (1, 1, 1, "euclidean", 1, [0.3, 0.7, 1.2]),
    (1, 3, 2, "euclidean", 0, [0.2, 0.5, 0.9, 1.5, 2.5]),
    (2, 2, 1, "supremum", 3, [0.4, 0.8]),
    (2, 3, 1, "manhattan", 1, [0.5, 1.0, 2.0, 4.0]),
    (1, 2, 3, "euclidean", 2, [0.05]),
]

SHIM = r"""
#include <atomic>
#include <pthread.h>
#include <thread>
#include <vector>
struct rqa_dim3 { unsigned int x, y, z; };
static thread_local rqa_dim3 threadIdx;
static rqa_dim3 blockIdx, blockDim;
static pthread_barrier_t rqa_barrier;
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__
#define __syncthreads() pthread_barrier_wait(&rqa_barrier)
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
extern "C" { double s_thr[MAX_EPS]; }
"""

HARNESS = r"""
template <class F> static void rqa_launch(int grid, int block, F f) {
    for (int b = 0; b < grid; ++b) {
        blockIdx = {(unsigned)b, 0, 0};
        blockDim = {(unsigned)block, 1, 1};
        pthread_barrier_init(&rqa_barrier, nullptr, block);
        std::vector<std::thread> ts;
        for (int t = 0; t < block; ++t)
            ts.emplace_back([=] { threadIdx = {(unsigned)t, 0, 0}; f(); });
        for (auto& t : ts) t.join();
        pthread_barrier_destroy(&rqa_barrier);
    }
}
extern "C" void launch_rqa_diag(int g, int b, const double* x, int n, int d, int m, int tau,
                                int N, const double* thr, int E, int theiler, int metric,
                                unsigned long long* hist, unsigned long long* total) {
    rqa_launch(g, b, [=] { rqa_diag(x, n, d, m, tau, N, thr, E, theiler, metric, hist, total); });
}
extern "C" void launch_rqa_rows(int g, int b, const double* x, int n, int d, int m, int tau,
                                int N, const double* thr, int E, int metric,
                                unsigned long long* hist) {
    rqa_launch(g, b, [=] { rqa_rows(x, n, d, m, tau, N, thr, E, metric, hist); });
}
"""


class _HostArray(np.ndarray):
    """A NumPy array with CuPy's ``get()``."""

    def get(self):
        return np.asarray(self)


def _fake_cupy(lib) -> types.ModuleType:
    """A stand-in for the parts of CuPy that ``engine_cupy`` uses, running the shimmed kernels."""

    class Function:
        def __init__(self, name):
            self.fn = getattr(lib, f"launch_{name}")

        def __call__(self, grid, block, args, shared_mem=0):
            assert shared_mem >= 8 * int(args[7]), "the thresholds must fit the shared memory"
            conv = [
                ctypes.c_void_p(a.ctypes.data) if isinstance(a, np.ndarray) else ctypes.c_int(a)
                for a in args
            ]
            self.fn(ctypes.c_int(grid[0]), ctypes.c_int(block[0]), *conv)

    class RawModule:
        def __init__(self, code, options):
            assert "--fmad=false" in options

        def get_function(self, name):
            return Function(name)

    cp = types.ModuleType("cupy")
    cp.uint64 = np.uint64
    cp.asarray = lambda a: np.array(a).view(_HostArray)
    cp.zeros = lambda shape, dtype: np.zeros(shape, dtype).view(_HostArray)
    cp.RawModule = RawModule
    cp.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
    return cp


@pytest.fixture(scope="module")
def shim_lib(tmp_path_factory):
    cxx = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler to run the kernel source on the CPU")
    d = tmp_path_factory.mktemp("cupy-shim")
    src = d / "rqa_kernels.cpp"
    src.write_text(SHIM + rqa_cupy.KERNEL_SOURCE + HARNESS)
    so = d / "rqa_kernels.so"
    cmd = [cxx, "-std=c++17", "-O1", "-ffp-contract=off", "-fPIC", "-shared", "-pthread"]
    cmd += [f"-DMAX_EPS={MAX_EPS}", str(src), "-o", str(so)]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)
    return ctypes.CDLL(str(so))


@pytest.fixture
def emulated(shim_lib, monkeypatch):
    """``backend="cupy"`` running the kernel source on the CPU (small blocks: many of them)."""
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(shim_lib))
    monkeypatch.setattr(rqa_cupy, "BLOCK", 16)
    rqa_cupy._kernels.cache_clear()
    yield
    rqa_cupy._kernels.cache_clear()


def _series(d: int, n: int, seed: int) -> np.ndarray:
    x = np.cumsum(np.random.default_rng(seed).standard_normal((n, d)), axis=0)
    return x[:, 0] if d == 1 else x


def _assert_same(a, b):
    np.testing.assert_array_equal(a.n_recurrences, b.n_recurrences)
    np.testing.assert_array_equal(a.P_d, b.P_d)
    np.testing.assert_array_equal(a.P_v, b.P_v)
    assert a.N == b.N and np.array_equal(a.eps, b.eps)


@pytest.mark.parametrize(("d", "m", "tau", "metric", "theiler", "eps"), CASES)
def test_kernel_source_on_the_cpu_equals_the_oracle(emulated, d, m, tau, metric, theiler, eps):
    x = _series(d, 47 + 5 * m, seed=m * 10 + d)
    kw = {"metric": metric, "theiler": theiler}
    got = engine.sweep_histograms(x, m, tau, eps, backend="cupy", **kw)
    want = engine.sweep_histograms(x, m, tau, eps, backend="numpy", **kw)
    assert got.backend == "cupy"
    _assert_same(got, want)


def test_kernel_source_ties_at_eps_and_quantised_series(emulated):
    """Integer-valued series put many distances exactly on eps: strict dist < eps decides."""
    x = np.random.default_rng(3).integers(0, 4, 80).astype(float)
    eps = [1.0, 2.0, np.sqrt(2.0), 3.0]
    got = engine.sweep_histograms(x, 2, 1, eps, normalize=False, backend="cupy")
    _assert_same(got, engine.sweep_histograms(x, 2, 1, eps, normalize=False, backend="numpy"))


def test_kernel_source_two_vectors_and_many_eps(emulated):
    x = _series(1, 60, seed=5)
    eps = np.linspace(0.01, 3.0, MAX_EPS)
    got = engine.sweep_histograms(x, 1, 1, eps, backend="cupy")
    _assert_same(got, engine.sweep_histograms(x, 1, 1, eps, backend="numpy"))
    two = engine.sweep_histograms([0.0, 1.0, 5.0], 2, 1, [0.5, 10.0], normalize=False)
    _assert_same(
        engine.sweep_histograms(
            [0.0, 1.0, 5.0], 2, 1, [0.5, 10.0], normalize=False, backend="cupy"
        ),
        two,
    )


def test_without_cupy_a_clear_error_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError
    rqa_cupy._kernels.cache_clear()
    with pytest.raises(ValueError, match=r"backend='cupy' needs CuPy and a CUDA GPU.*\[gpu\]"):
        engine.sweep_histograms(_series(1, 30, 0), 2, 1, [0.5], backend="cupy")
    assert rqa_cupy.available() is False
    assert engine.resolve_backend("cupy") == "cupy"


@pytest.mark.gpu
@pytest.mark.parametrize(("d", "m", "tau", "metric", "theiler", "eps"), CASES)
def test_cupy_on_the_gpu_equals_the_oracle(d, m, tau, metric, theiler, eps):
    rqa_cupy._kernels.cache_clear()
    x = _series(d, 700 + 37 * m, seed=m + d)
    kw = {"metric": metric, "theiler": theiler}
    got = engine.sweep_histograms(x, m, tau, eps, backend="cupy", **kw)
    want = engine.sweep_histograms(x, m, tau, eps, backend="numpy", **kw)
    _assert_same(got, want)


@pytest.mark.gpu
def test_cupy_on_the_gpu_equals_torch_cuda_at_seed_length():
    """One seed-scale unit (N ~ 5,000, the joint series, 17 eps): cupy == torch on CUDA."""
    rqa_cupy._kernels.cache_clear()
    x = _series(2, 5000, seed=11)
    eps = [round(0.02 * k, 2) for k in range(1, 18)]
    got = engine.sweep_histograms(x, 4, 2, eps, backend="cupy")
    _assert_same(got, engine.sweep_histograms(x, 4, 2, eps, backend="torch", device="cuda"))
