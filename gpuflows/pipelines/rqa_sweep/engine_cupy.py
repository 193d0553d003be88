"""CuPy backend of the sweep-aware RQA engine: two CUDA ``RawKernel`` passes, every eps at once.

Called through :func:`gpuflows.pipelines.rqa_sweep.engine.sweep_histograms` (``backend="cupy"``);
the definitions and the float64 dtype contract are that module's, the result is the numba and
torch backends' (``kernels.loi_and_symmetry`` of the upper-triangle counts), integer-identical.

Kernels (:data:`KERNEL_SOURCE`, compiled once per process with ``--fmad=false``):

``rqa_diag``: one thread per upper diagonal k = 1..N-1. It walks i = 0..N-k-1, builds the
    distance of pair (i, i+k) in the reference's order (component-major, then lag;
    ``u = x_c[a] - x_c[b]``; euclidean ``acc + u*u`` through ``__dmul_rn`` / ``__dadd_rn`` so no
    fused multiply-add changes a rounding; manhattan ``acc + |u|``; supremum ``max(acc, |u|)``),
    maps it to its threshold index q = #{T_e <= acc} (T: the exact thresholds of
    ``kernels.decision_thresholds``, in shared memory) and runs the all-eps scan of the numba
    backend: when q drops below the previous q the runs of e in [q, q_prev) start at i; when it
    rises the runs of e in [q_prev, q) end there and their lengths go to the diagonal histogram
    (``atomicAdd``, only for k >= theiler). A sentinel q = E after the last pair closes every
    open run. The recurrences of the diagonal, #{i : q_i <= e}, come from a per-thread count of
    each q, summed into ``total`` once per thread.
``rqa_rows``: one thread per row r = 0..N-1: the same scan along the whole row (distances
    recomputed; R is symmetric, so the runs along row r are the vertical runs of column r; the
    pair (r, r) has distance 0 < T_0, a recurrence, as in the reference).

Per thread: an int run-start and an unsigned count per eps (2 KiB of local memory at 254 eps).
Nothing N x N is held; device memory is two (E, N+1) uint64 histograms plus the series.

This module has been reviewed, not yet run: CuPy needs a CUDA device and none was available
where it was written. ``tests/pipelines/rqa_sweep/test_rqa_cupy.py`` compares it with the CPU
oracle exactly on a GPU (``gpu`` marker) and runs :data:`KERNEL_SOURCE` itself on the CPU under a
C++ shim (one POSIX thread per CUDA thread, a barrier for ``__syncthreads``).
"""

from __future__ import annotations

import functools

import numpy as np

from gpuflows.pipelines.rqa_sweep.kernels import MAX_EPS, loi_and_symmetry

BLOCK = 128
"""Threads per block of both kernels (the kernels work for any block size)."""
METRIC_CODE = {"euclidean": 0, "manhattan": 1, "supremum": 2}
"""Metric names as the integer codes the kernels take."""
OPTIONS = ("--fmad=false", "-DMAX_EPS=" + str(MAX_EPS))
"""NVRTC options: no contraction of a*b+c into an FMA anywhere (the distances must round as the
reference's do); MAX_EPS sizes the per-thread arrays."""

KERNEL_SOURCE = r"""
extern "C" {

// One coordinate's term: (u*u) for euclidean, |u| otherwise. __dmul_rn is never fused. (No
// math header is needed: |u| and max are written out; the values are finite, never NaN.)
__device__ __forceinline__ double rqa_term(double u, int metric) {
    return metric == 0 ? __dmul_rn(u, u) : (u < 0.0 ? -u : u);
}

// The distance of embedded vectors a and b, accumulated component-major, then lag (the
// reference's order); euclidean: the sum of squares (compared with exact thresholds).
__device__ __forceinline__ double rqa_dist(const double* x, int n, int d, int m, int tau,
                                           int a, int b, int metric) {
    double acc = 0.0;
    for (int c = 0; c < d; ++c) {
        const double* xc = x + (long long)c * n;
        for (int j = 0; j < m; ++j) {
            double t = rqa_term(xc[a + j * tau] - xc[b + j * tau], metric);
            if (c == 0 && j == 0) {
                acc = t;
            } else if (metric == 2) {
                acc = t > acc ? t : acc;
            } else {
                acc = __dadd_rn(acc, t);
            }
        }
    }
    return acc;
}

// q = #{thr[e] <= acc} for thresholds sorted ascending.
__device__ __forceinline__ int rqa_qindex(double acc, const double* thr, int E) {
    int q = 0;
    while (q < E && thr[q] <= acc) {
        ++q;
    }
    return q;
}

// One step of the all-eps run scan at position i: runs of e in [q, qprev) start, runs of e in
// [qprev, q) end (length i - start[e]) and are counted in hist when count is true.
__device__ __forceinline__ void rqa_step(int q, int qprev, int i, int* start,
                                         unsigned long long* hist, int N, bool count) {
    if (q < qprev) {
        for (int e = q; e < qprev; ++e) {
            start[e] = i;
        }
    } else if (count) {
        for (int e = qprev; e < q; ++e) {
            atomicAdd(&hist[(long long)e * (N + 1) + (i - start[e])], 1ULL);
        }
    }
}

__global__ void rqa_diag(const double* x, int n, int d, int m, int tau, int N,
                         const double* thr, int E, int theiler, int metric,
                         unsigned long long* hist, unsigned long long* total) {
    extern __shared__ double s_thr[];
    for (int e = threadIdx.x; e < E; e += blockDim.x) {
        s_thr[e] = thr[e];
    }
    __syncthreads();
    int k = 1 + blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= N) {
        return;
    }
    int start[MAX_EPS];
    unsigned int cnt[MAX_EPS + 1];
    for (int e = 0; e <= E; ++e) {
        cnt[e] = 0;
    }
    bool count = k >= theiler;
    int L = N - k;
    int qprev = E;
    for (int i = 0; i <= L; ++i) {
        int q = E;  // past the diagonal's end: closes every open run
        if (i < L) {
            q = rqa_qindex(rqa_dist(x, n, d, m, tau, i, i + k, metric), s_thr, E);
            cnt[q] += 1;
        }
        rqa_step(q, qprev, i, start, hist, N, count);
        qprev = q;
    }
    unsigned long long below = 0;  // pairs of this diagonal with q <= e: its recurrences at e
    for (int e = 0; e < E; ++e) {
        below += cnt[e];
        if (below) {
            atomicAdd(&total[e], below);
        }
    }
}

__global__ void rqa_rows(const double* x, int n, int d, int m, int tau, int N,
                         const double* thr, int E, int metric, unsigned long long* hist) {
    extern __shared__ double s_thr[];
    for (int e = threadIdx.x; e < E; e += blockDim.x) {
        s_thr[e] = thr[e];
    }
    __syncthreads();
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= N) {
        return;
    }
    int start[MAX_EPS];
    int qprev = E;
    for (int a = 0; a <= N; ++a) {
        int q = E;
        if (a < N) {
            q = rqa_qindex(rqa_dist(x, n, d, m, tau, r, a, metric), s_thr, E);
        }
        rqa_step(q, qprev, a, start, hist, N, true);
        qprev = q;
    }
}

}  // extern "C"
"""


def _cupy():
    """The cupy module with a usable CUDA device, or a ValueError saying what is missing."""
    try:
        import cupy
    except ImportError as exc:
        raise ValueError(
            "backend='cupy' needs CuPy and a CUDA GPU: pip install 'gpuflows[gpu]' "
            f"(cupy-cuda12x) on a CUDA host, or use backend='torch'/'numba' ({exc})"
        ) from None
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - CUDARuntimeError without a driver or device
        raise ValueError(f"backend='cupy': CuPy found no usable CUDA device ({exc})") from None
    if n < 1:
        raise ValueError("backend='cupy': CuPy found no CUDA device")
    return cupy


@functools.cache
def _kernels():
    """(rqa_diag, rqa_rows), compiled once per process (CuPy also caches the binary on disk)."""
    cupy = _cupy()
    module = cupy.RawModule(code=KERNEL_SOURCE, options=OPTIONS)
    return module.get_function("rqa_diag"), module.get_function("rqa_rows")


def unavailable_reason() -> str | None:
    """None when CuPy imports and sees a CUDA device (no compilation), else why not."""
    try:
        _cupy()
    except ValueError as exc:
        return str(exc)
    return None


def available() -> bool:
    """True when CuPy imports and sees a CUDA device (no compilation)."""
    return unavailable_reason() is None


def sweep_cupy(xs, m, tau, N, thr, metric, theiler):
    """Backend entry: (P_d, P_v, n_recurrences) of ``xs`` (d, n) float64 for the thresholds
    ``thr`` (:func:`gpuflows.pipelines.rqa_sweep.kernels.decision_thresholds`, ascending), on the
    current CuPy device. Same contract as ``engine_numba.sweep_numba``."""
    cupy = _cupy()
    diag_kernel, rows_kernel = _kernels()
    xs = np.ascontiguousarray(xs, dtype=np.float64)
    d, n = xs.shape
    E = int(thr.size)
    if not 1 <= E <= MAX_EPS:
        raise ValueError(f"1..{MAX_EPS} thresholds per sweep, got {E}")
    x = cupy.asarray(xs)
    t = cupy.asarray(np.ascontiguousarray(thr, dtype=np.float64))
    diag = cupy.zeros((E, N + 1), dtype=cupy.uint64)
    total = cupy.zeros(E, dtype=cupy.uint64)
    rows = cupy.zeros((E, N + 1), dtype=cupy.uint64)
    i32 = np.int32
    shared = E * 8  # the thresholds, per block
    diag_kernel(
        ((N - 1 + BLOCK - 1) // BLOCK,),
        (BLOCK,),
        (x, i32(n), i32(d), i32(m), i32(tau), i32(N), t, i32(E), i32(theiler))
        + (i32(METRIC_CODE[metric]), diag, total),
        shared_mem=shared,
    )
    rows_kernel(
        ((N + BLOCK - 1) // BLOCK,),
        (BLOCK,),
        (x, i32(n), i32(d), i32(m), i32(tau), i32(N), t, i32(E), i32(METRIC_CODE[metric]), rows),
        shared_mem=shared,
    )
    diag_h, total_h, rows_h = (a.get().astype(np.int64) for a in (diag, total, rows))
    return loi_and_symmetry(diag_h, total_h, rows_h, N, theiler)
