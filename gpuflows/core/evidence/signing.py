"""Signed reviews: an approval counts only when signed by a reviewer the trust policy names.

Each review is signed with the reviewer's Ed25519 key (an OpenSSH ``ssh-ed25519`` key pair, as
``ssh-keygen -t ed25519`` makes) over the canonical JSON of (flow run id, result digest,
decision, comment). The :class:`~gpuflows.core.evidence.trust.TrustPolicy` lists the reviewers'
*public* keys; :func:`verify_review` checks a signature against the named reviewer's key. Typing
two names from one shell no longer makes two reviewers: it takes two private keys, and the same
key under two names still counts once. Limits: whoever holds a private key can sign as its owner
(keep keys per person, passphrase-protected); the policy block that lists the keys must itself be
edited only by the team's admins.
"""

from __future__ import annotations

import base64
import hashlib
import json


def review_payload(flow_run_id: str, result_digest: str, approved: bool, comment: str) -> bytes:
    """The exact bytes a reviewer signs (canonical JSON, sorted keys)."""
    doc = {
        "flow_run_id": str(flow_run_id),
        "result_digest": str(result_digest),
        "decision": "approve" if approved else "reject",
        "comment": comment,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _load_private(private_key: str | bytes, password: bytes | None = None):  # noqa: ANN202
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data = private_key.encode() if isinstance(private_key, str) else private_key
    if b"OPENSSH PRIVATE KEY" in data:
        key = serialization.load_ssh_private_key(data, password=password)
    else:
        key = serialization.load_pem_private_key(data, password=password)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the review key must be an Ed25519 key (ssh-keygen -t ed25519)")
    return key


def load_public_key(public_key: str):  # noqa: ANN201
    """Parse an OpenSSH ``ssh-ed25519 AAAA... [comment]`` public key.

    Raises:
        ValueError: not an Ed25519 OpenSSH public key.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_ssh_public_key(public_key.strip().encode())
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an OpenSSH public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("reviewer keys must be ssh-ed25519 public keys")
    return key


def generate_keypair() -> tuple[str, str]:
    """(OpenSSH private key text, ``ssh-ed25519 ...`` public key): for tests and first setup."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    priv = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    return priv, public_key_of(priv)


def public_key_of(private_key: str | bytes, password: bytes | None = None) -> str:
    """The ``ssh-ed25519 AAAA...`` public key of a private key."""
    from cryptography.hazmat.primitives import serialization

    pub = _load_private(private_key, password).public_key()
    return pub.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


def fingerprint(public_key: str) -> str:
    """``SHA256:<base64>`` of the key blob, as ``ssh-keygen -l`` prints it."""
    blob = base64.b64decode(public_key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def sign_review(
    private_key: str | bytes,
    *,
    flow_run_id: str,
    result_digest: str,
    approved: bool,
    comment: str = "",
    password: bytes | None = None,
) -> str:
    """Base64 Ed25519 signature of :func:`review_payload` (what the UI form's field takes)."""
    key = _load_private(private_key, password)
    sig = key.sign(review_payload(flow_run_id, result_digest, approved, comment))
    return base64.b64encode(sig).decode()


def verify_signature(public_key: str, signature: str, payload: bytes) -> bool:
    """True when ``signature`` (base64) is ``public_key``'s signature of ``payload``."""
    from cryptography.exceptions import InvalidSignature

    try:
        load_public_key(public_key).verify(base64.b64decode(signature, validate=True), payload)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
