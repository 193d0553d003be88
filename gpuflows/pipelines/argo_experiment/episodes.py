"""Episodes, advanced step-synchronously so every model call is part of a batch.

All episodes of a chunk (questions x seeds x the group's policies) take step t together: one
``generate`` per role for every Decomposer, Reasoner and Synthesizer call of the step (a role's
rows share its system prompt and example, which the engine prefills once), one batched
retrieval for the sub-queries, one ``generate`` for the sub-answers. A Retrieve step is two
calls (sub-query, sub-answer), a Reason step one, the synthesis one.

Shared states share calls. Each call's sampling seed is drawn from (question id, seed, step,
role, digest of the context so far) -- not from the strategy -- so two episodes in the same
state (Always-Retrieve and an ARGO group that retrieves, in their first steps) send the
identical request: inside a batch it is sent once (``shared_in_batch``), across tasks and runs
the call cache answers it (``cache_hits``). ``requests`` counts what the episodes asked for --
what the seeds' one-episode-at-a-time runner sends -- and ``model_calls`` what the model ran.

``sequential=True`` is the seeds' way, for the benchmark: one episode at a time, one
``generate`` per call, no sharing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gpuflows.core.evidence.digest import value_digest
from gpuflows.models.llm.config import LLMRequest, LLMResult
from gpuflows.pipelines.argo_experiment.data import Question
from gpuflows.pipelines.argo_experiment.prompts import PromptSet
from gpuflows.pipelines.argo_experiment.strategies import Policy

CLIP_CHUNK, CLIP_ANSWER = 600, 400


class Backend(Protocol):
    def generate(self, requests: Sequence[LLMRequest]) -> list[LLMResult]: ...


@dataclass
class Episode:
    question: Question
    seed: int
    policy: Policy
    u: float = 0.0
    steps: list[dict[str, Any]] = field(default_factory=list)
    answer: str | None = None
    done: bool = False
    errors: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    pending: str | None = None

    @property
    def key(self) -> str:
        return f"{self.question.id}|{self.seed}|{self.policy.key}"

    def context_digest(self) -> str:
        return value_digest(
            [[s["action"], s.get("subquery"), s.get("hits"), s.get("answer")] for s in self.steps]
        )

    def record(self) -> dict[str, Any]:
        actions = [s["action"] for s in self.steps]
        return {
            "episode": self.key,
            "question_id": self.question.id,
            "difficulty": self.question.difficulty,
            "strategy": self.policy.strategy,
            "seed": self.seed,
            "theta_cont": self.policy.theta_cont,
            "theta_star": self.policy.theta_star,
            "actions": actions,
            "retrievals": actions.count("retrieve"),
            "successful_retrievals": sum(bool(s.get("success")) for s in self.steps),
            "reasoning_steps": actions.count("reason"),
            "final_u": self.u,
            "answer": self.answer or "",
            "answer_key": self.question.answer,
            "n_options": len(self.question.options),
            "requests": self.requests,
            "errors": self.errors,
            "steps": self.steps,
        }


def call_seed(question_id: str, seed: int, step: int, role: str, context: str) -> int:
    """The sampling seed of one call: from the state, never from the strategy."""
    raw = hashlib.sha256(f"{question_id}|{seed}|{step}|{role}|{context}".encode()).digest()
    return int.from_bytes(raw[:8], "big") & (2**62 - 1)


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _options(q: Question) -> str:
    return "\n".join(f"{i}. {o}" for i, o in enumerate(q.options, 1))


def _history(ep: Episode) -> str:
    lines = []
    for i, s in enumerate(ep.steps, 1):
        if s["action"] == "retrieve":
            lines.append(f"{i}. Searched: {s['subquery']} -> {s['answer']}")
        else:
            lines.append(f"{i}. Reasoned: {s['answer']}")
    return "\n".join(lines) or "(none yet)"


def clean_subquery(text: str) -> str:
    for line in text.splitlines():
        line = line.strip().removeprefix("Sub-question:").removeprefix("Follow up:").strip()
        if line:
            return line[:300]
    return ""


class EpisodeRunner:
    """Runs episodes against a backend and a retriever; ``counts`` says what it cost."""

    def __init__(
        self,
        backend: Backend,
        retriever: Any,
        prompts: PromptSet,
        *,
        max_steps: int,
        delta_r: float,
        delta_p: float,
        u_max: float = 1.0,
        greedy: bool = False,
        max_new_tokens: dict[str, int] | None = None,
        sequential: bool = False,
    ) -> None:
        self.backend, self.retriever, self.prompts = backend, retriever, prompts
        self.max_steps, self.delta_r, self.delta_p, self.u_max = max_steps, delta_r, delta_p, u_max
        self.greedy, self.caps, self.sequential = greedy, dict(max_new_tokens or {}), sequential
        self.counts = {
            "requests": 0,
            "sent": 0,
            "shared_in_batch": 0,
            "cache_hits": 0,
            "model_calls": 0,
            "errors": 0,
            "generate_calls": 0,
        }

    # -- requests ---------------------------------------------------------------------------

    def _request(self, ep: Episode, role: str, **fields: str) -> LLMRequest:
        rp = self.prompts[role]
        step = len(ep.steps)
        ep.requests += 1
        return LLMRequest(
            id=f"{ep.key}|{step}|{role}",
            messages=rp.messages(**fields),
            max_new_tokens=self.caps.get(role, rp.max_new_tokens),
            stop=rp.stop,
            temperature=0.0 if self.greedy else rp.temperature,
            top_p=1.0 if self.greedy else rp.top_p,
            seed=call_seed(ep.question.id, ep.seed, step, role, ep.context_digest()),
        )

    def _common(self, ep: Episode) -> dict[str, str]:
        q = ep.question
        return {"question": q.question, "options": _options(q), "history": _history(ep)}

    def _synth(self, ep: Episode) -> LLMRequest:
        seen: dict[str, str] = {}
        for s in ep.steps:
            for cid, text in zip(s.get("hits", []), s.get("hit_texts", []), strict=True):
                seen.setdefault(cid, text)
        evidence = "\n".join(f"[{i}] {t}" for i, t in enumerate(seen.values(), 1)) or "(none)"
        c = self._common(ep)
        return self._request(ep, "synthesizer", evidence=evidence, **c)

    def generate(self, reqs: list[LLMRequest]) -> list[LLMResult]:
        """Identical requests (all but the id) go to the backend once; counted."""
        self.counts["requests"] += len(reqs)
        if not reqs:
            return []
        if self.sequential:
            results = []
            for r in reqs:
                results += self.backend.generate([r])
                self.counts["generate_calls"] += 1
            self._tally(results)
            self.counts["sent"] += len(reqs)
            return results
        keys = [r.model_dump_json(exclude={"id"}) for r in reqs]
        uniq: dict[str, LLMRequest] = {}
        for k, r in zip(keys, reqs, strict=True):
            uniq.setdefault(k, r)
        # one generate per role (system prompt): the role's few-shot block is the prefix every
        # row of the batch shares, which the engine prefills once and keeps for the next batch
        by_role: dict[str, list[str]] = {}
        for k, r in uniq.items():
            by_role.setdefault(str((r.messages or ({"content": ""},))[0]["content"]), []).append(k)
        by: dict[str, LLMResult] = {}
        for ks in by_role.values():
            out = self.backend.generate([uniq[k] for k in ks])
            self.counts["generate_calls"] += 1
            self._tally(out)
            by.update(zip(ks, out, strict=True))
        self.counts["sent"] += len(uniq)
        self.counts["shared_in_batch"] += len(reqs) - len(uniq)
        return [by[k] for k in keys]

    def _tally(self, results: list[LLMResult]) -> None:
        for res in results:
            if res.error is not None:
                self.counts["errors"] += 1
            elif res.cached:
                self.counts["cache_hits"] += 1
            else:
                self.counts["model_calls"] += 1

    # -- the loop ---------------------------------------------------------------------------

    def run(self, episodes: list[Episode]) -> list[dict[str, Any]]:
        """Run every episode to its synthesis; their records, in input order."""
        if self.sequential:
            for ep in episodes:
                self._advance([ep])
        else:
            self._advance(episodes)
        return [ep.record() for ep in episodes]

    def _advance(self, episodes: list[Episode]) -> None:
        active = [e for e in episodes if not e.done]
        while active:
            reqs, owners = [], []
            for ep in active:
                step = len(ep.steps)
                action = "terminate"
                if step < self.max_steps:
                    action = ep.policy.action(
                        ep.u, question_id=ep.question.id, seed=ep.seed, step=step
                    )
                if action == "terminate":
                    reqs.append(self._synth(ep))
                elif action == "retrieve":
                    c = self._common(ep)
                    reqs.append(self._request(ep, "decomposer", progress=f"{ep.u:.0%}", **c))
                else:
                    c = self._common(ep)
                    reqs.append(self._request(ep, "reasoner", progress=f"{ep.u:.0%}", **c))
                owners.append((ep, action))
            retrieving = []
            for (ep, action), res in zip(owners, self.generate(reqs), strict=True):
                text = self._text(ep, res)
                if action == "terminate":
                    ep.answer, ep.done = text, True
                elif action == "retrieve":
                    ep.pending = clean_subquery(text) or ep.question.question
                    retrieving.append(ep)
                else:
                    u0, ep.u = ep.u, min(ep.u + self.delta_p, self.u_max)
                    ep.steps.append(
                        {
                            "action": "reason",
                            "answer": _clip(text, CLIP_ANSWER),
                            "u_before": u0,
                            "u_after": ep.u,
                        }
                    )
            if retrieving:
                self._retrieve(retrieving)
            active = [e for e in active if not e.done]

    def _retrieve(self, eps: list[Episode]) -> None:
        found = self.retriever.retrieve([ep.pending or "" for ep in eps])
        reqs = []
        for ep, (hits, _) in zip(eps, found, strict=True):
            context = "\n".join(f"[{i}] {_clip(h.text, CLIP_CHUNK)}" for i, h in enumerate(hits, 1))
            reqs.append(
                self._request(
                    ep,
                    "retrieval_answer",
                    question=ep.question.question,
                    subquery=ep.pending or "",
                    context=context or "(nothing found)",
                )
            )
        for ep, (hits, ok), res in zip(eps, found, self.generate(reqs), strict=True):
            u0 = ep.u
            if ok:
                ep.u = min(ep.u + self.delta_r, self.u_max)
            ep.steps.append(
                {
                    "action": "retrieve",
                    "subquery": ep.pending,
                    "hits": [h.chunk_id for h in hits],
                    "hit_texts": [_clip(h.text, CLIP_CHUNK) for h in hits],
                    "scores": [round(h.score, 6) for h in hits],
                    "success": ok,
                    "answer": _clip(self._text(ep, res), CLIP_ANSWER),
                    "u_before": u0,
                    "u_after": ep.u,
                }
            )
            ep.pending = None

    def _text(self, ep: Episode, res: LLMResult) -> str:
        if res.error is not None:
            ep.errors.append({"step": len(ep.steps), **res.error.model_dump()})
            return ""
        return res.text or ""


def build_episodes(
    questions: list[Question], seeds: list[int], policies: Sequence[Policy]
) -> list[Episode]:
    """One episode per (question, seed, policy), in that order."""
    return [Episode(q, s, p) for q in questions for s in seeds for p in policies]
