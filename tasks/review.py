"""Dual review (双人复核) through Prefect's pause-for-input, and a CLI to give a review.

A flow that has reached T2 with a reproduction pauses twice (``review-1``, ``review-2``, ...)
waiting for a :class:`ReviewInput`. Reviewers answer from the Prefect UI (the paused run shows a
form) or from the command line:

    python -m tasks.review <flow-run-id> --reviewer alice [--reject] [--comment "..."]

Self-hosted Prefect has no user identity, so the reviewer's name is input: a name that already
reviewed this run is refused (case-insensitively) and the run waits for someone else.
"""

from __future__ import annotations

import argparse
import logging
import sys
from uuid import UUID

from prefect.flow_runs import pause_flow_run, resume_flow_run
from prefect.input import RunInput

from gpuflows.core.evidence.trust import Review

log = logging.getLogger("gpuflows.review")


class ReviewInput(RunInput):
    """A reviewer's decision on a paused run."""

    reviewer: str
    approve: bool
    comment: str = ""


def collect_reviews(
    needed: int,
    *,
    timeout_s: int = 3600,
    poll_interval_s: int = 10,
    key_prefix: str = "review",
    max_rounds: int | None = None,
) -> list[Review]:
    """Pause the current flow run until ``needed`` distinct reviewers approved, or one rejected.

    Args:
        needed: distinct approvals required (the trust policy's ``min_reviewers``).
        timeout_s: how long each pause waits; on timeout Prefect fails the run.
        poll_interval_s: how often the paused run checks for input.
        key_prefix: pause keys are ``<prefix>-1``, ``<prefix>-2``, ...
        max_rounds: most pauses before giving up (default ``needed + 3``: room for repeats).

    Returns:
        The accepted reviews, in order (repeats by the same reviewer are not included).
    """
    reviews: list[Review] = []
    seen: set[str] = set()
    for rnd in range(1, (max_rounds or needed + 3) + 1):
        approvals = sum(r.approved for r in reviews)
        if approvals >= needed or any(not r.approved for r in reviews):
            break
        answer = pause_flow_run(
            wait_for_input=ReviewInput,
            timeout=timeout_s,
            poll_interval=poll_interval_s,
            key=f"{key_prefix}-{rnd}",
        )
        name = answer.reviewer.strip()
        if not name:
            log.warning("review %d ignored: reviewer name is empty", rnd)
            continue
        if name.casefold() in seen:
            log.warning(
                "review %d ignored: %s already reviewed this run; a second, distinct "
                "reviewer is needed",
                rnd,
                name,
            )
            continue
        seen.add(name.casefold())
        reviews.append(Review(reviewer=name, approved=answer.approve, comment=answer.comment))
        log.info("review %d: %s %s", rnd, name, "approved" if answer.approve else "REJECTED")
    return reviews


def give_review(
    flow_run_id: str | UUID, *, reviewer: str, approve: bool, comment: str = ""
) -> None:
    """Resume a paused run with a review (what the UI form does)."""
    if not reviewer.strip():
        raise ValueError("--reviewer must be a non-empty name")
    resume_flow_run(
        UUID(str(flow_run_id)),
        run_input={"reviewer": reviewer.strip(), "approve": approve, "comment": comment},
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tasks.review", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "flow_run_id", help="id of the paused flow run (shown in the UI and the run's logs)"
    )
    p.add_argument("--reviewer", required=True, help="your name; each reviewer counts once")
    p.add_argument("--reject", action="store_true", help="reject instead of approve")
    p.add_argument("--comment", default="", help="what you checked, or why you reject")
    a = p.parse_args(argv)
    try:
        give_review(a.flow_run_id, reviewer=a.reviewer, approve=not a.reject, comment=a.comment)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'rejected' if a.reject else 'approved'} run {a.flow_run_id} as {a.reviewer}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
