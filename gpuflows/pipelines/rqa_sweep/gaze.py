"""The embedded default dataset: deterministic SYNTHETIC eye-tracking gaze for three groups.

Not recorded data. The model only gives the RQA sweep realistic structure (fixations, drift,
saccades) with group differences in a plausible direction; the magnitudes are invented, so any
result on it is a test of the pipeline, not of the disease (Trust Tier T1).

Model, per subject (units: degrees of visual angle; the unit screen spans
:data:`SCREEN_DEG` degrees in x and in y; sampled at :data:`SAMPLE_RATE_HZ`):

1. Subject parameters: the group's values (table below) times exp(N(0, 0.1^2)) each, drawn once,
   so subjects of a group differ and groups overlap.
2. Alternate fixation, saccade, fixation, ... from a uniform start point inside the margins.
3. Fixation: duration = 40 ms + Gamma(shape k, mean fix_ms - 40 ms). Around the fixation point
   the eye drifts as an Ornstein-Uhlenbeck process (stationary sd ``drift_deg``, time constant
   100 ms), kicked by microsaccades (Poisson, ``msacc_hz``; amplitude Gamma(4, mean
   ``msacc_deg``), uniform direction, spread over 3 samples).
4. Saccade: amplitude Gamma(2.5, mean ``sacc_deg``), uniform direction, the target mirrored
   into [0.05, 0.95]; landing error N(0, ``landing_deg``^2) per axis. Duration from the main
   sequence D = (2.2 ms/deg * A + 21 ms) * ``sacc_slow`` (Carpenter 1988; Bahill, Clark & Stark
   1975), shape the minimum-jerk profile 10u^3 - 15u^4 + 6u^5 (bell-shaped velocity).
5. Tracker noise N(0, 0.05 deg^2) per axis on every sample; positions clipped to [0, 1].

Group parameters (synthetic; direction loosely after Mosimann et al. 2004 Brain 127:431 and
Fernandez et al. 2013 IOVS 54:8345 - longer fixations, smaller saccades, less exploration in AD;
Kapoula et al. 2014 Age 36:535 - microsaccade differences in MCI and AD; Molitor, Ko & Ally
2015 J Alzheimers Dis 44:1 - review; Crawford et al. 2013 - slower, less accurate saccades;
references from memory, for direction only). fix_ms: mean fixation duration; fix_k: its gamma
shape (lower = more variable); sacc_deg: mean saccade amplitude; sacc_slow: main-sequence
duration factor; landing_deg: landing error sd; drift_deg: drift sd; msacc_hz / msacc_deg:
microsaccade rate and mean amplitude.

=======  ======  =====  ========  =========  ===========  =========  ========  =========
group    fix_ms  fix_k  sacc_deg  sacc_slow  landing_deg  drift_deg  msacc_hz  msacc_deg
=======  ======  =====  ========  =========  ===========  =========  ========  =========
control  250     4.0    6.0       1.00       0.30         0.10       1.0       0.30
mci      290     3.5    5.2       1.05       0.40         0.13       1.3       0.36
ad       340     3.0    4.4       1.12       0.55         0.17       1.7       0.45
=======  ======  =====  ========  =========  ===========  =========  ========  =========

Determinism: subject ``i`` of group ``g`` uses ``Generator(PCG64(SeedSequence([seed, g_code,
i])))`` (g_code: 0 control, 1 mci, 2 ad), and draws event by event, so a subject is the same in
every preset and a shorter series is a prefix of a longer one. Streams are NumPy's; NumPy does not
promise identical Generator streams across major versions, hence the recorded dataset digest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gpuflows.core.evidence.digest import frame_digest
from gpuflows.core.evidence.provenance import register_generated
from gpuflows.core.faults import InputError
from gpuflows.pipelines.rqa_sweep.schema import COLUMNS, GROUPS, canonical_frame

DATASET_NAME = "synthetic-gaze"
GENERATOR = "gpuflows.pipelines.rqa_sweep.gaze.generate_dataset"
"""Name under which generated tables are registered (gpuflows.core.evidence.provenance)."""
DATASET_VERSION = "1.0.0"
"""Bump whenever the model or a parameter changes (the digest changes with it)."""
SAMPLE_RATE_HZ = 250.0
"""Samples per second (a common research eye-tracker rate)."""
SCREEN_DEG = 30.0
"""Visual angle spanned by the unit screen, per axis."""
MARGIN = 0.05
"""Saccade targets stay in [MARGIN, 1 - MARGIN]."""
NOISE_DEG = 0.05
"""Tracker noise sd per axis, all groups (an instrument property)."""
DRIFT_TAU_S = 0.1
"""Time constant of the fixational drift (Ornstein-Uhlenbeck)."""
SUBJECT_SD = 0.1
"""Log-sd of each subject's parameter multipliers."""
MIN_FIX_MS = 40.0
"""Shift of the fixation-duration gamma (no fixation is shorter)."""


@dataclass(frozen=True)
class GroupParams:
    """One group's model parameters (see the module table)."""

    fix_ms: float
    fix_k: float
    sacc_deg: float
    sacc_slow: float
    landing_deg: float
    drift_deg: float
    msacc_hz: float
    msacc_deg: float


GROUP_PARAMS: dict[str, GroupParams] = {
    "control": GroupParams(250.0, 4.0, 6.0, 1.00, 0.30, 0.10, 1.0, 0.30),
    "mci": GroupParams(290.0, 3.5, 5.2, 1.05, 0.40, 0.13, 1.3, 0.36),
    "ad": GroupParams(340.0, 3.0, 4.4, 1.12, 0.55, 0.17, 1.7, 0.45),
}


@dataclass(frozen=True)
class GazePreset:
    """Dataset size: subjects per group and samples per subject."""

    n_per_group: int
    n_samples: int


PRESETS: dict[str, GazePreset] = {
    "smoke": GazePreset(n_per_group=3, n_samples=300),
    "seed": GazePreset(n_per_group=20, n_samples=5000),  # the seed's 60 subjects x 5,000 samples
}


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InputError(f"{name}={value!r}: use an integer >= {minimum}")
    return int(value)


def subject_rng(seed: int, group: str, subject_index: int) -> np.random.Generator:
    """The generator of one subject, from (seed, group code, index within the group)."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([seed, GROUPS.index(group), subject_index]))
    )


def _reflect(v: np.ndarray) -> np.ndarray:
    lo, hi = MARGIN, 1.0 - MARGIN
    span = hi - lo
    u = np.mod(v - lo, 2 * span)
    return lo + np.where(u > span, 2 * span - u, u)


def _ou(n: int, a: float, innov: np.ndarray, kick: np.ndarray) -> np.ndarray:
    """o[k] = a o[k-1] + innov[k] + kick[k], o[-1] = 0, per axis (columns)."""
    out = np.empty((n, 2))
    ox = oy = 0.0
    ix, iy = innov[:, 0].tolist(), innov[:, 1].tolist()
    kx, ky = kick[:, 0].tolist(), kick[:, 1].tolist()
    for k in range(n):
        ox = a * ox + ix[k] + kx[k]
        oy = a * oy + iy[k] + ky[k]
        out[k, 0] = ox
        out[k, 1] = oy
    return out


def simulate_subject(
    group: str,
    subject_index: int,
    *,
    n_samples: int,
    seed: int = 0,
    sample_rate_hz: float = SAMPLE_RATE_HZ,
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Gaze of one synthetic subject.

    Returns:
        ``(x, y, events)``: positions (float64, length ``n_samples``) and the ground-truth events
        (``kind`` 'fixation'/'saccade', ``start`` sample, ``n`` samples, ``duration_ms``,
        ``amplitude_deg`` of saccades, ``truncated`` for the event cut by the end).
    """
    if group not in GROUP_PARAMS:
        raise InputError(f"group={group!r}: use one of {list(GROUPS)}")
    n_samples = _check_int("n_samples", n_samples, 2)
    subject_index = _check_int("subject_index", subject_index, 0)
    seed = _check_int("seed", seed, 0)
    if not (isinstance(sample_rate_hz, int | float) and math.isfinite(sample_rate_hz)) or (
        sample_rate_hz <= 0
    ):
        raise InputError(f"sample_rate_hz={sample_rate_hz!r}: use a positive number")
    gp = GROUP_PARAMS[group]
    rng = subject_rng(seed, group, subject_index)
    mult = np.exp(rng.normal(0.0, SUBJECT_SD, size=4))
    fix_ms, sacc_deg = gp.fix_ms * mult[0], gp.sacc_deg * mult[1]
    drift_deg, msacc_hz = gp.drift_deg * mult[2], gp.msacc_hz * mult[3]
    dt = 1.0 / sample_rate_hz
    a = math.exp(-dt / DRIFT_TAU_S)
    innov_sd = drift_deg * math.sqrt(1.0 - a * a) / SCREEN_DEG
    noise_sd = NOISE_DEG / SCREEN_DEG

    xy = np.empty((n_samples, 2))
    events: list[tuple[str, int, int, float]] = []
    center = rng.uniform(MARGIN, 1.0 - MARGIN, size=2)
    pos = 0
    while pos < n_samples:
        # fixation
        dur_ms = MIN_FIX_MS + rng.gamma(gp.fix_k, (fix_ms - MIN_FIX_MS) / gp.fix_k)
        n = max(1, round(dur_ms * sample_rate_hz / 1000.0))
        innov = rng.normal(0.0, innov_sd, size=(n, 2))
        kick = np.zeros((n, 2))
        for _ in range(rng.poisson(msacc_hz * n * dt)):
            at = int(rng.integers(0, n))
            amp = rng.gamma(4.0, gp.msacc_deg / 4.0) / SCREEN_DEG
            phi = rng.uniform(0.0, 2 * math.pi)
            kick[at : at + 3] += amp / 3.0 * np.array([math.cos(phi), math.sin(phi)])
        path = center + _ou(n, a, innov, kick) + rng.normal(0.0, noise_sd, size=(n, 2))
        take = min(n, n_samples - pos)
        xy[pos : pos + take] = path[:take]
        events.append(("fixation", pos, n, math.nan))
        pos += n
        if pos >= n_samples:
            break
        # saccade from where the eye is to the (mirrored, mislanded) target
        start = path[-1]
        amp_deg = rng.gamma(2.5, sacc_deg / 2.5)
        phi = rng.uniform(0.0, 2 * math.pi)
        target = _reflect(center + amp_deg / SCREEN_DEG * np.array([math.cos(phi), math.sin(phi)]))
        landing = rng.normal(0.0, gp.landing_deg / SCREEN_DEG, size=2)
        center = np.clip(target + landing, 0.0, 1.0)
        actual_deg = float(np.hypot(*(center - start))) * SCREEN_DEG
        d_ms = (2.2 * actual_deg + 21.0) * gp.sacc_slow
        n = max(1, round(d_ms * sample_rate_hz / 1000.0))
        u = np.arange(1, n + 1) / (n + 1)
        s = (10 * u**3 - 15 * u**4 + 6 * u**5)[:, None]
        path = start + (center - start) * s + rng.normal(0.0, noise_sd, size=(n, 2))
        take = min(n, n_samples - pos)
        xy[pos : pos + take] = path[:take]
        events.append(("saccade", pos, n, actual_deg))
        pos += n

    np.clip(xy, 0.0, 1.0, out=xy)
    ev = pd.DataFrame(events, columns=["kind", "start", "n", "amplitude_deg"])
    ev["truncated"] = ev["start"] + ev["n"] > n_samples
    ev["n"] = np.minimum(ev["n"], n_samples - ev["start"])
    ev.insert(3, "duration_ms", ev["n"] * 1000.0 / sample_rate_hz)
    return xy[:, 0].copy(), xy[:, 1].copy(), ev


def generate_dataset(
    n_per_group: int = PRESETS["seed"].n_per_group,
    n_samples: int = PRESETS["seed"].n_samples,
    seed: int = 0,
    *,
    sample_rate_hz: float = SAMPLE_RATE_HZ,
) -> pd.DataFrame:
    """The synthetic dataset in the gaze schema (``gpuflows.pipelines.rqa_sweep.schema``).

    Subjects ``control-000``, ..., ``mci-000``, ..., ``ad-000``, ...; ``t = k / sample_rate_hz``
    seconds from 0. Defaults: the seed-scale preset (60 subjects, 5,000 samples).

    Example:
        >>> df = generate_dataset(**vars(PRESETS["smoke"]), seed=0)
        >>> df.shape
        (2700, 5)
    """
    n_per_group = _check_int("n_per_group", n_per_group, 1)
    n_samples = _check_int("n_samples", n_samples, 2)
    t = np.arange(n_samples, dtype=np.float64) / sample_rate_hz
    parts = []
    for group in GROUPS:
        for i in range(n_per_group):
            x, y, _ = simulate_subject(
                group, i, n_samples=n_samples, seed=seed, sample_rate_hz=sample_rate_hz
            )
            parts.append((f"{group}-{i:03d}", group, x, y))
    n_sub = len(parts)
    frame = pd.DataFrame(
        {
            "subject_id": np.repeat([p[0] for p in parts], n_samples),
            "group": np.repeat([p[1] for p in parts], n_samples),
            "t": np.tile(t, n_sub),
            "x": np.concatenate([p[2] for p in parts]),
            "y": np.concatenate([p[3] for p in parts]),
        }
    )
    frame = frame[list(COLUMNS)]
    # whatever file this is written to, its canonical table is known generated data
    register_generated(frame_digest(canonical_frame(frame)), GENERATOR)
    return frame


def generate_preset(name: str, seed: int = 0) -> pd.DataFrame:
    """:func:`generate_dataset` at a named size (``smoke`` or ``seed``)."""
    if name not in PRESETS:
        raise InputError(f"gaze preset {name!r}: use one of {sorted(PRESETS)}")
    p = PRESETS[name]
    return generate_dataset(p.n_per_group, p.n_samples, seed)
