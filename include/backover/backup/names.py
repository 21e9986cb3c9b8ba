"""Collection names as file names: ``%`` and ``/`` percent-escaped, as mongodump does."""

from __future__ import annotations

import urllib.parse

_ESCAPES = {"%": "%25", "/": "%2F"}


def escape(name: str) -> str:
    """``a/b%c`` -> ``a%2Fb%25c`` (``%`` first, so escaping is reversible)."""
    return "".join(_ESCAPES.get(c, c) for c in name)


def unescape(name: str) -> str:
    return urllib.parse.unquote(name)
