"""Collection names as file names: ``%`` and ``/`` percent-escaped, as mongodump does."""

from __future__ import annotations

import urllib.parse

_ESCAPES = {"%": "%25", "/": "%2F"}


def escape(name: str) -> str:
    """``a/b%c`` -> ``a%2Fb%25c`` (``%`` first, so escaping is reversible)."""
    return "".join(_ESCAPES.get(c, c) for c in name)


def unescape(name: str) -> str:
    return urllib.parse.unquote(name)


#: ``backover backup --restore`` loads each collection under this prefix and renames it into place
#: once every collection is loaded and checked; the dump never backs such a collection up.
STAGING_PREFIX = "backover.restore."


def staging(name: str) -> str:
    """The name a collection is loaded under before it is renamed into place."""
    return STAGING_PREFIX + name
