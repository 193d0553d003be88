"""A generated question set and corpus whose answers need retrieval (synthetic, T1).

Every question is about a made-up radio component (``the Korvex-17 radio unit``): its attributes
are stated only in the generated corpus, so no model can know them from pre-training, and a
strategy that retrieves has a real advantage over one that only reasons. Many components share
each attribute, so the retriever must find the right paragraph, not any paragraph.

* easy -- the question uses the corpus's own words ("fronthaul latency budget");
* medium -- the question paraphrases them ("how many microseconds may ... take one way");
* hard -- two hops: the component's site is in one paragraph, the site's timing profile in
  another.

Deterministic in ``seed``; the answer's position among the options is drawn from it too.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from gpuflows.core.evidence.provenance import register_generated
from gpuflows.core.store.io import atomic_write_bytes
from gpuflows.pipelines.argo_experiment.data import Question, QuestionSet, load_jsonl

GENERATOR_VERSION = "1"
_SYL = ("kor", "vex", "tal", "mir", "zen", "dra", "pol", "quin", "sar", "bel", "nox", "ter")
_SITES = ("Thalmar", "Ostvik", "Brennor", "Calder", "Vesmund", "Arrow", "Yarrow", "Dunmere")


def _name(rng: random.Random, used: set[str]) -> str:
    while True:
        n = (rng.choice(_SYL) + rng.choice(_SYL)).capitalize() + f"-{rng.randint(2, 99)}"
        if n not in used:
            used.add(n)
            return n


def _options(rng: random.Random, right: str, wrong: list[str]) -> tuple[tuple[str, ...], int]:
    opts = [right, *wrong[:3]]
    rng.shuffle(opts)
    return tuple(opts), opts.index(right) + 1


def _numbers(rng: random.Random, right: int, lo: int, hi: int) -> list[str]:
    pool = sorted({rng.randint(lo, hi) for _ in range(12)} - {right})
    rng.shuffle(pool)
    return [str(v) for v in pool[:3]]


def generate(n_per_difficulty: int, seed: int = 0) -> tuple[list[Question], list[tuple[str, str]]]:
    """Questions and corpus paragraphs ``(doc_name, text)``."""
    rng = random.Random(f"argo-synth-{GENERATOR_VERSION}-{seed}")
    used: set[str] = set()
    questions: list[Question] = []
    paras: list[tuple[str, str]] = []
    codes = rng.sample(range(10, 100), len(_SITES))
    profiles = {s: f"TP-{c}" for s, c in zip(_SITES, codes, strict=True)}
    for s, p in profiles.items():
        paras.append(("sites", f"Site {s} synchronises its radios with timing profile {p}."))
    for i in range(n_per_difficulty):
        unit = _name(rng, used)
        lat = rng.randint(150, 480)
        paras.append(
            (
                "units",
                f"The {unit} radio unit has a fronthaul latency budget of {lat} microseconds.",
            )
        )
        opts, ans = _options(rng, str(lat), _numbers(rng, lat, 150, 480))
        questions.append(
            Question(
                id=f"syn-easy-{i:04d}",
                question=f"What is the fronthaul latency budget of the {unit} radio unit, in "
                "microseconds?",
                options=opts,
                answer=ans,
                difficulty="easy",
            )
        )
        unit = _name(rng, used)
        carriers = rng.randint(2, 24)
        paras.append(
            ("units", f"Each {unit} distributed unit aggregates at most {carriers} carriers.")
        )
        opts, ans = _options(rng, str(carriers), _numbers(rng, carriers, 2, 24))
        questions.append(
            Question(
                id=f"syn-medium-{i:04d}",
                question=f"How many component carriers can one {unit} distributed unit combine "
                "at the most?",
                options=opts,
                answer=ans,
                difficulty="medium",
            )
        )
        unit = _name(rng, used)
        site = rng.choice(_SITES)
        paras.append(("deployments", f"The {unit} radio unit is deployed at site {site}."))
        wrong = [p for s, p in profiles.items() if p != profiles[site]]
        rng.shuffle(wrong)
        opts, ans = _options(rng, profiles[site], wrong)
        questions.append(
            Question(
                id=f"syn-hard-{i:04d}",
                question=f"Which timing profile synchronises the site where the {unit} radio "
                "unit is deployed?",
                options=opts,
                answer=ans,
                difficulty="hard",
            )
        )
    return questions, paras


def write_synthetic(folder: str | Path, n_per_difficulty: int, seed: int = 0) -> tuple[Path, Path]:
    """``questions.jsonl`` and ``corpus/*.md`` under ``folder`` (atomic writes); their paths."""
    folder = Path(folder)
    questions, paras = generate(n_per_difficulty, seed)
    qpath = folder / "questions.jsonl"
    lines = "".join(json.dumps(q.model_dump(mode="json")) + "\n" for q in questions)
    atomic_write_bytes(qpath, lines.encode())
    corpus = folder / "corpus"
    docs: dict[str, list[str]] = {}
    for doc, text in paras:
        docs.setdefault(doc, []).append(text)
    for doc, texts in docs.items():
        body = f"# Generated specification: {doc}\n\n" + "\n\n".join(texts) + "\n"
        atomic_write_bytes(corpus / f"{doc}.md", body.encode())
    return qpath, corpus


def load_synthetic(folder: str | Path, n_per_difficulty: int, seed: int = 0) -> QuestionSet:
    """Generate (or regenerate identically) and load the synthetic set, marked synthetic."""
    qpath, _ = write_synthetic(folder, n_per_difficulty, seed)
    qs = load_jsonl(qpath, synthetic=True)
    qs.source = (
        f"synthetic (gpuflows.pipelines.argo_experiment.synth v{GENERATOR_VERSION}, seed {seed})"
    )
    # by content digest: the file passed back as ``questions`` is still ours (synthetic)
    register_generated(qs.digest, f"{__name__} v{GENERATOR_VERSION}")
    return qs
