"""Command registry: each command names the privilege action it needs; the server checks it.

Handlers live in ``commands/`` and register themselves with :func:`command`::

    @command("insert", action=Action.WRITE)
    def insert(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
        ...

``cmd`` is the command body decoded lazily (a ``RawBSONDocument``; nested documents stay raw, so
stored documents keep their exact bytes), with OP_MSG document sequences merged in as lists.
A handler returns the reply document without ``ok`` (the server adds ``ok: 1.0``) or raises
:class:`~backover.mongo.errors.CommandError`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from backover.mongo.errors import command_not_found

if TYPE_CHECKING:  # pragma: no cover
    from .server import Connection, StandinServer


class Action(enum.Enum):
    """What a command does, for the privilege check (see ``auth.ROLE_ACTIONS``)."""

    NONE = "none"  # no authentication needed: hello, ping, buildInfo, saslStart ...
    AUTHENTICATED = "authenticated"  # any authenticated user: endSessions, connectionStatus ...
    READ = "read"  # find, getMore, count, listCollections, listIndexes, aggregate
    WRITE = "write"  # insert, update, delete, findAndModify, create, drop, indexes, rename
    DB_ADMIN = "dbAdmin"  # dropDatabase, collStats
    USER_ADMIN = "userAdmin"  # createUser, updateUser, dropUser, grant/revoke roles
    CLUSTER_ADMIN = "clusterAdmin"  # modifyChangeStreams, serverStatus, listDatabases of all dbs
    CUSTOM = "custom"  # the handler calls ``ctx.authorize`` itself


Handler = Callable[["Context", Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class CommandSpec:
    name: str
    handler: Handler
    action: Action
    flavours: frozenset[str] = field(default_factory=lambda: frozenset({"mongodb", "documentdb"}))


_COMMANDS: dict[str, CommandSpec] = {}


def command(
    name: str, *aliases: str, action: Action, flavours: tuple[str, ...] = ("mongodb", "documentdb")
) -> Callable[[Handler], Handler]:
    """Register ``handler`` under ``name`` (and ``aliases``) with the action it needs."""

    def register(handler: Handler) -> Handler:
        for n in (name, *aliases):
            if n in _COMMANDS:
                raise RuntimeError(f"command {n!r} registered twice")
            _COMMANDS[n] = CommandSpec(n, handler, action, frozenset(flavours))
        return handler

    return register


def lookup(name: str, flavour: str) -> CommandSpec:
    """The spec of command ``name`` on ``flavour``; unknown -> code 59 CommandNotFound."""
    spec = _COMMANDS.get(name)
    if spec is None or flavour not in spec.flavours:
        raise command_not_found(name)
    return spec


@dataclass
class Context:
    """What a handler sees: the server, the client connection and the command's ``$db``."""

    server: StandinServer
    conn: Connection
    db: str

    @property
    def store(self):
        return self.server.store

    @property
    def flavour(self) -> str:
        return self.server.config.flavour

    def authorize(self, action: Action, db: str | None = None) -> None:
        """Raise code 13 Unauthorized unless the connection's users may do ``action`` on ``db``."""
        self.server.auth.check(self.conn.principals, action, self.db if db is None else db)
