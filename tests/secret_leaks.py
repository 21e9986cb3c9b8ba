"""Passwords with awkward characters, and the check that no piece of one was shown.

Shared by the redaction tests of the commands (``tests/backover/test_redaction.py``) and of the
Lambdas (``tests/lambdas/test_lambda_redaction.py``).
"""

from __future__ import annotations

import secrets
import urllib.parse

#: What a password holds, written into a URI as it is or percent-escaped. "%4A" and "%E9" are valid
#: escapes (so the unescaped URI is valid and its password wrong; 0xE9 alone is not UTF-8, which
#: the driver's SASLprep refuses); the others make the unescaped URI malformed. Upper-case hex, so
#: no four characters of a password, escaped or not, look like a log line's lower-case hex ids.
SPECIALS = ["/", "@", ":", "?", "#", "%zz", "/@", "%4A", "%E9"]
VALID_ESCAPES = ("%4A", "%E9")
#: No hex digits and random case: four characters of a password cannot be in a log line by chance.
_LETTERS = "ghjkmnpqrstvwxyzGHJKMNPQRSTVWXYZ"


def password(special: str) -> str:
    """Two digits, ``special``, ten letters; the digits first make a driver that cuts an unescaped
    password at its '/' read ``user:12`` as a host and its port. (Two, so that no four characters
    of the password are digits and a '/', as a port and path are in every URI shown.)"""
    letters = "".join(secrets.choice(_LETTERS) for _ in range(10))
    return f"{secrets.randbelow(90) + 10}{special}{letters}"


def uri(port: int, secret: str, *, escaped: bool, user: str = "root") -> str:
    written = urllib.parse.quote_plus(secret) if escaped else secret
    return (
        f"mongodb://{user}:{written}@127.0.0.1:{port}/?authSource=admin&directConnection=true"
        "&serverSelectionTimeoutMS=3000"
    )


def _windows(text: str, size: int = 4) -> set[str]:
    return {text[i : i + size] for i in range(len(text) - size + 1)}


def leaks(secret: str, shown: str) -> list[str]:
    """Pieces of ``secret`` (as typed and as escaped) of four characters or more found in ``shown``."""
    pieces = _windows(secret) | _windows(urllib.parse.quote_plus(secret))
    return sorted(p for p in pieces if p in shown)
