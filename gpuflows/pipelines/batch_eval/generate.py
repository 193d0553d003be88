"""Deterministic generator of the embedded default dataset (synthetic: caps results at T1).

The world: candidates (cocktails, flower arrangements, headshots: seed 000's three scenarios;
and cakes) carry four attributes, ``category``, ``colour``, ``background`` and ``dietary``. The
two channels see different parts of it, so a re-ranker needs both:

* the caption (text channel) always names the category and the dietary tag, the colour in about
  half of the captions, never the background;
* the visual embedding (``VISUAL_DIM`` floats) is a fixed random projection of the one-hot
  category, colour and background, plus Gaussian noise (``noise``): it never shows the dietary
  tag.

Queries name a category and one to three hard constraints; relevance is graded from the
candidate's attributes by :func:`grade` (never from a template label). Everything follows from
``seed``: the same arguments give byte-identical tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gpuflows.core.evidence.provenance import register_generated
from gpuflows.pipelines.batch_eval.schema import BatchEvalData

DATASET_NAME = "batch-eval-synthetic"
DATASET_VERSION = "2026.12.1"
VISUAL_DIM = 32

VOCAB: dict[str, list[str]] = {
    "category": ["cocktail", "flowers", "headshot", "cake"],
    "colour": ["red", "white", "pink", "yellow", "blue", "green", "purple", "orange"],
    "background": ["white", "outdoor", "studio", "dark", "beach", "garden"],
    "dietary": ["vegan", "gluten-free", "alcohol-free", "standard"],
}
NOUN = {
    "cocktail": "cocktail",
    "flowers": "flower arrangement",
    "headshot": "portrait photo",
    "cake": "cake",
}
EDIBLE = ("cocktail", "cake")
FILLER = ["", "high quality", "close-up", "professional shot", "popular choice"]
VISIBLE = ("category", "colour", "background")


def grade(attributes: dict[str, str], constraints: dict[str, str]) -> int:
    """Graded relevance (0..3) of a candidate for a query's constraints.

    0: another category; 1: the category, fewer than half of the other constraints met;
    2: at least half met; 3: every hard constraint met.
    """
    if constraints.get("category") not in (None, attributes.get("category")):
        return 0
    others = [k for k in constraints if k != "category"]
    if not others:
        return 3
    met = sum(attributes.get(k) == constraints[k] for k in others)
    return 3 if met == len(others) else (2 if 2 * met >= len(others) else 1)


def query_text(constraints: dict[str, str], style: int = 0) -> str:
    """The query as a user would type it, composed from its constraints."""
    cat = constraints["category"]
    parts = [constraints.get("colour", ""), NOUN[cat]]
    text = " ".join(p for p in parts if p)
    if "background" in constraints:
        text += f" on a {constraints['background']} background"
    if "dietary" in constraints:
        text += f", {constraints['dietary']}"
    lead = ["", "show me ", "find a ", "looking for a "][style % 4]
    return (lead + text).strip()


def caption(attrs: dict[str, str], rng: np.random.Generator) -> str:
    colour = attrs["colour"] + " " if rng.random() < 0.5 else ""
    filler = FILLER[int(rng.integers(len(FILLER)))]
    text = f"{attrs['dietary']} {colour}{NOUN[attrs['category']]}"
    return f"{text}, {filler}" if filler else text


def projection(seed: int, dim: int = VISUAL_DIM) -> np.ndarray:
    """The fixed 'image encoder': one-hot visible attributes -> ``dim`` floats."""
    n = sum(len(VOCAB[k]) for k in VISIBLE)
    return np.random.default_rng([seed, 7]).standard_normal((n, dim)) / np.sqrt(len(VISIBLE))


def visual_embedding(attrs: dict[str, str], proj: np.ndarray, noise: float, rng) -> np.ndarray:
    onehot, off = np.zeros(proj.shape[0]), 0
    for k in VISIBLE:
        onehot[off + VOCAB[k].index(attrs[k])] = 1.0
        off += len(VOCAB[k])
    return onehot @ proj + noise * rng.standard_normal(proj.shape[1])


def random_constraints(rng: np.random.Generator) -> dict[str, str]:
    cat = VOCAB["category"][int(rng.integers(len(VOCAB["category"])))]
    pool = ["colour", "background"] + (["dietary"] if cat in EDIBLE else [])
    n = int(rng.integers(1, len(pool) + 1))
    keys = sorted(rng.choice(pool, size=n, replace=False).tolist())
    return {"category": cat, **{k: VOCAB[k][int(rng.integers(len(VOCAB[k])))] for k in keys}}


def candidate_for(
    cons: dict[str, str], rng: np.random.Generator, p_match: float, p_category: float = 0.9
) -> dict:
    attrs = {k: VOCAB[k][int(rng.integers(len(VOCAB[k])))] for k in VOCAB}
    if rng.random() < p_category:
        attrs["category"] = cons["category"]
    for k, v in cons.items():
        if k != "category" and rng.random() < p_match:
            attrs[k] = v
    if attrs["category"] not in EDIBLE:
        attrs["dietary"] = "standard"
    return attrs


def generate(
    *,
    n_train: int,
    n_test: int,
    n_candidates: int = 20,
    noise: float = 0.5,
    visual_dim: int = VISUAL_DIM,
    seed: int = 0,
) -> BatchEvalData:
    """Queries (train + test), their candidate lists and graded judgments, deterministically."""
    rng = np.random.default_rng([seed, 2026])
    proj = projection(seed, visual_dim)
    queries, cands, judg = [], [], []
    seen: set[str] = set()
    i = 0
    while len(queries) < n_train + n_test:
        cons = random_constraints(rng)
        text = query_text(cons, int(rng.integers(4)))
        if text in seen:
            continue
        seen.add(text)
        qid = f"q{len(queries):05d}"
        split = "train" if len(queries) < n_train else "test"
        queries.append({"query_id": qid, "text": text, "split": split, "constraints": cons})
        for _ in range(n_candidates):
            attrs = candidate_for(cons, rng, p_match=0.5)
            cid = f"c{i:06d}"
            i += 1
            vec = visual_embedding(attrs, proj, noise, rng).astype(np.float32)
            cands.append(
                {
                    "candidate_id": cid,
                    "caption": caption(attrs, rng),
                    "attributes": attrs,
                    "visual": [float(x) for x in vec],
                }
            )
            judg.append({"query_id": qid, "candidate_id": cid, "relevance": grade(attrs, cons)})
    data = BatchEvalData(
        pd.DataFrame(queries),
        pd.DataFrame(cands),
        pd.DataFrame(judg).astype({"relevance": np.int64}),
        name=DATASET_NAME,
        version=DATASET_VERSION,
        synthetic=True,
        description=(
            f"gpuflows.pipelines.batch_eval.generate(n_train={n_train}, n_test={n_test}, "
            f"n_candidates={n_candidates}, noise={noise}, seed={seed})"
        ),
    )
    # by content digest: written out and passed back as data_path it is still ours (synthetic)
    register_generated(data.digest(), f"{__name__} v{DATASET_VERSION}")
    return data
