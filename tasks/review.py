"""Dual review (双人复核) through Prefect's pause-for-input, and a CLI to give a review.

A flow that has reached T2 with a reproduction pauses twice (``review-1``, ``review-2``, ...)
waiting for a :class:`ReviewInput`. Each approval is signed with the reviewer's Ed25519 key over
(flow run id, result digest, decision, comment) and counts only when it verifies against the
public key the ``TrustPolicyBlock`` lists for that reviewer
(:mod:`gpuflows.core.evidence.signing`). From the command line:

    python -m tasks.review <flow-run-id> --reviewer alice --key ~/.ssh/id_ed25519 \
        --result-digest <digest shown in the pause> [--reject] [--comment "..."]

or, for the Prefect UI form, produce the signature first and paste it into the form:

    python -m tasks.review sign <flow-run-id> --key ~/.ssh/id_ed25519 \
        --result-digest <digest> [--reject] [--comment "..."]

Self-hosted Prefect has no user identity, so the name is input; the key is what proves it: an
unsigned, unknown-key, tampered or misdirected approval is refused with the reason (logged) and
the run waits for someone else; one key counts once whatever names it is typed under.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from uuid import UUID

from prefect.flow_runs import pause_flow_run, resume_flow_run
from prefect.input import RunInput

from gpuflows.core.evidence.signing import fingerprint, sign_review
from gpuflows.core.evidence.trust import Evidence, Review, TrustPolicy, review_problem

log = logging.getLogger("gpuflows.review")


class ReviewInput(RunInput):
    """A reviewer's decision on a paused run."""

    reviewer: str
    approve: bool
    comment: str = ""
    result_digest: str = ""
    signature: str = ""


def collect_reviews(
    needed: int,
    *,
    timeout_s: int = 3600,
    poll_interval_s: int = 10,
    key_prefix: str = "review",
    max_rounds: int | None = None,
    policy: TrustPolicy | None = None,
    result_digest: str = "",
) -> list[Review]:
    """Pause the current flow run until ``needed`` distinct reviewers approved, or one rejected.

    Args:
        needed: distinct approvals required (the trust policy's ``min_reviewers``).
        timeout_s: how long each pause waits; on timeout Prefect fails the run.
        poll_interval_s: how often the paused run checks for input.
        key_prefix: pause keys are ``<prefix>-1``, ``<prefix>-2``, ...
        max_rounds: most pauses before giving up (default ``needed + 3``: room for repeats).
        policy: when given, a review whose signature does not verify against the policy's
            reviewer keys is refused here (logged with the reason) and the run waits on.
        result_digest: digest of the result under review; signatures must cover it.

    Returns:
        The accepted reviews, in order (repeats by the same reviewer are not included).
    """
    from prefect.runtime import flow_run

    run_id = str(flow_run.get_id() or "")
    check_ev = None
    if policy is not None:  # the same rule assess() applies, checked as each review arrives
        check_ev = Evidence.model_construct(flow_run_id=run_id, result_digest=result_digest)
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
        review = Review(
            reviewer=name,
            approved=answer.approve,
            comment=answer.comment,
            flow_run_id=run_id,
            result_digest=answer.result_digest or result_digest,
            signature=answer.signature,
        )
        if check_ev is not None and policy is not None:
            if answer.approve and (why := review_problem(review, check_ev, policy)):
                log.warning("review %d refused: %s", rnd, why)
                continue
            keys = {n.strip().casefold(): k for n, k in policy.reviewers.items()}
            if name.casefold() in keys:
                fp = fingerprint(keys[name.casefold()])
                if fp in seen:
                    log.warning("review %d ignored: key %s already reviewed this run", rnd, fp)
                    continue
                seen.add(fp)
        seen.add(name.casefold())
        reviews.append(review)
        log.info("review %d: %s %s", rnd, name, "approved" if answer.approve else "REJECTED")
    return reviews


def give_review(
    flow_run_id: str | UUID,
    *,
    reviewer: str,
    approve: bool,
    comment: str = "",
    result_digest: str = "",
    signature: str = "",
    private_key: str | None = None,
) -> None:
    """Resume a paused run with a review (what the UI form does); signs it with
    ``private_key`` (OpenSSH Ed25519 key text) when given."""
    if not reviewer.strip():
        raise ValueError("--reviewer must be a non-empty name")
    if private_key is not None:
        signature = sign_review(
            private_key,
            flow_run_id=str(flow_run_id),
            result_digest=result_digest,
            approved=approve,
            comment=comment,
        )
    resume_flow_run(
        UUID(str(flow_run_id)),
        run_input={
            "reviewer": reviewer.strip(),
            "approve": approve,
            "comment": comment,
            "result_digest": result_digest,
            "signature": signature,
        },
    )


def _read_key(path: str) -> str:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"--key {path}: no such file (ssh-keygen -t ed25519 makes one)")
    return p.read_text()


def _sign_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tasks.review sign",
        description="Print the signature a review form takes (base64 Ed25519).",
    )
    p.add_argument("flow_run_id")
    p.add_argument("--key", required=True, help="your Ed25519 private key (OpenSSH format)")
    p.add_argument("--result-digest", required=True, help="the digest the paused run shows")
    p.add_argument("--reject", action="store_true")
    p.add_argument("--comment", default="")
    a = p.parse_args(argv)
    try:
        sig = sign_review(
            _read_key(a.key),
            flow_run_id=a.flow_run_id,
            result_digest=a.result_digest,
            approved=not a.reject,
            comment=a.comment,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(sig)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sign"]:
        return _sign_main(argv[1:])
    p = argparse.ArgumentParser(prog="python -m tasks.review", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "flow_run_id", help="id of the paused flow run (shown in the UI and the run's logs)"
    )
    p.add_argument("--reviewer", required=True, help="your name; each reviewer counts once")
    p.add_argument("--reject", action="store_true", help="reject instead of approve")
    p.add_argument("--comment", default="", help="what you checked, or why you reject")
    p.add_argument("--key", default=None, help="your Ed25519 private key: signs the review")
    p.add_argument("--result-digest", default="", help="the digest the paused run shows")
    p.add_argument("--signature", default="", help="a signature from 'tasks.review sign'")
    a = p.parse_args(argv)
    try:
        give_review(
            a.flow_run_id,
            reviewer=a.reviewer,
            approve=not a.reject,
            comment=a.comment,
            result_digest=a.result_digest,
            signature=a.signature,
            private_key=_read_key(a.key) if a.key else None,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'rejected' if a.reject else 'approved'} run {a.flow_run_id} as {a.reviewer}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
