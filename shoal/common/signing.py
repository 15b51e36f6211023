"""Signed submissions: an HMAC-SHA256 of the encoded submission under the cluster's shared secret."""

import hashlib
import hmac


def sign(payload: bytes, secret: str) -> str:
    """The hex signature of ``payload``."""
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def verify(payload: bytes, signature: str, secret: str) -> bool:
    """Whether ``signature`` is ``payload``'s signature under ``secret`` (constant-time)."""
    return hmac.compare_digest(sign(payload, secret), signature)
