"""The stand-in's TCP server: one thread per client connection, commands dispatched by name.

Start one from Python (tests) with :func:`start_in_thread`, or as a process with
``python -m backover_sandbox.standin --flavour documentdb --port 27017`` (see ``__main__.py``).
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

from bson.binary import Binary
from bson.int64 import Int64

from backover.bsonvalues import encode
from backover.mongo import errors

from . import wire
from .auth import AuthManager
from .changelog import ChangeLog
from .clock import SystemClock, WallClock
from .cursors import CursorRegistry
from .registry import Action, Context, lookup
from .sessions import (
    WRITE_CONCERN_COMMANDS,
    RetryableWrites,
    check_concerns,
    check_session_fields,
    parse_write_concern,
)
from .store import Store

log = logging.getLogger(__name__)

FLAVOURS = ("mongodb", "documentdb")


@dataclass
class ServerConfig:
    """How one stand-in server runs.

    :param flavour: ``mongodb`` or ``documentdb`` (DocumentDB's differences: change streams must be
        enabled with ``modifyChangeStreams``, no retryable writes, no ``fullDocumentBeforeChange``).
    :param port: TCP port on ``host``; 0 picks a free one.
    :param auth: require SCRAM authentication and check privileges (default True).
    :param root_user: name of the first user, created in ``admin`` with role ``root``.
    :param root_password: its password (never logged).
    :param retention_seconds: change-log retention; resuming from older history fails with 286.
    :param clock: the server's wall clock (default the machine's); a test passes a
        :class:`~backover_sandbox.standin.clock.ManualClock` and advances it instead of sleeping.
    """

    flavour: str = "mongodb"
    host: str = "127.0.0.1"
    port: int = 0
    auth: bool = True
    root_user: str | None = None
    root_password: str | None = field(default=None, repr=False)
    retention_seconds: float | None = 3 * 3600
    set_name: str = "rs0"
    clock: WallClock = field(default_factory=SystemClock, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.flavour not in FLAVOURS:
            raise ValueError(f"flavour must be one of {', '.join(FLAVOURS)}, not {self.flavour!r}")
        if self.auth and not (self.root_user and self.root_password):
            raise ValueError("auth needs root_user and root_password")


class Connection:
    """One client connection's state: who is authenticated on it and SCRAM conversations."""

    _ids = itertools.count(1)

    def __init__(self, sock: socket.socket, peer: Any) -> None:
        self.id = next(self._ids)
        self.sock = sock
        self.peer = peer
        self.principals: set[tuple[str, str]] = set()
        self.auth_state: dict[str, Any] = {}


class CommandBody(Mapping[str, Any]):
    """The command document with OP_MSG document sequences (``documents``, ``updates``...) merged in."""

    def __init__(self, body: Mapping[str, Any], sequences: Mapping[str, Sequence[Any]]) -> None:
        self._body = body
        self._sequences = sequences

    def __getitem__(self, key: str) -> Any:
        if key in self._sequences:
            return self._sequences[key]
        return self._body[key]

    def __iter__(self) -> Iterator[str]:
        yield from self._body
        yield from (k for k in self._sequences if k not in self._body)

    def __len__(self) -> int:
        return len(set(self._body) | set(self._sequences))

    @property
    def name(self) -> str:
        return next(iter(self._body))


class StandinServer:
    """A MongoDB wire-protocol server answering like a replica-set primary."""

    def __init__(self, config: ServerConfig) -> None:
        # Imported for their registrations.
        from .commands import changestreams, crud, ddl, server_info, users  # noqa: F401

        self.config = config
        self.store = Store(ChangeLog(config.retention_seconds, config.clock))
        self.started_at = config.clock.time()
        self.auth = AuthManager(enabled=config.auth)
        self.cursors = CursorRegistry(config.clock)
        self.retryable = RetryableWrites(config.clock)  # flavour mongodb: retried writes answered once
        self.change_streams_enabled: set[tuple[str, str]] = set()  # documentdb: (db, coll), "" = all
        if config.root_user and config.root_password:
            self.auth.create_user(
                "admin", config.root_user, config.root_password, [{"role": "root", "db": "admin"}]
            )
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._connections: set[Connection] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._request_ids = itertools.count(1)

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._listener is not None, "server not started"
        return self._listener.getsockname()[1]

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.port}"

    def uri(self, user: str, password: str) -> str:
        """A URI for this server (``retryWrites=false`` on the documentdb flavour, as DocumentDB needs)."""
        options = "authSource=admin&directConnection=true"
        if self.config.flavour == "documentdb":
            options += "&retryWrites=false"
        return (
            f"mongodb://{quote_plus(user)}:{quote_plus(password)}@{self.config.host}:{self.port}/?{options}"
        )

    def bind(self) -> None:
        """Bind the listening socket (raises OSError when the port is in use)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.config.host, self.config.port))
        except OSError:
            sock.close()
            raise
        sock.listen(128)
        self._listener = sock

    def serve_forever(self) -> None:
        assert self._listener is not None, "bind() first"
        log.info("%s stand-in listening on %s", self.config.flavour, self.address)
        while not self._stopping.is_set():
            try:
                client, peer = self._listener.accept()
            except OSError:
                break
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(client, peer)
            with self._lock:
                self._connections.add(conn)
            thread = threading.Thread(
                target=self._serve_connection, args=(conn,), daemon=True, name=f"standin-conn-{conn.id}"
            )
            thread.start()

    def stop(self) -> None:
        """Stop accepting, close every client connection."""
        self._stopping.set()
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            self.drop_connection(conn)

    def drop_connection(self, conn: Connection) -> None:
        """Close a client connection abruptly (also used to simulate network failures)."""
        try:
            conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        conn.sock.close()

    def drop_all_connections(self) -> int:
        """Close every client connection; returns how many. Clients see a network error."""
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            self.drop_connection(conn)
        return len(conns)

    # -- per connection --------------------------------------------------------------------
    def _serve_connection(self, conn: Connection) -> None:
        try:
            while True:
                header = _recv_exact(conn.sock, wire.HEADER.size)
                if header is None:
                    return
                length, request_id, _, op_code = wire.HEADER.unpack(header)
                if length < wire.HEADER.size or length > wire.MAX_MESSAGE_SIZE:
                    raise wire.ProtocolError(f"invalid message length {length}")
                payload = _recv_exact(conn.sock, length - wire.HEADER.size)
                if payload is None:
                    return
                request = wire.parse(request_id, op_code, payload)
                reply = encode(self.dispatch(conn, request))
                if request.more_to_come:
                    continue
                build = wire.op_reply if request.legacy else wire.op_msg
                conn.sock.sendall(build(next(self._request_ids), request_id, reply))
        except (OSError, wire.ProtocolError) as e:
            log.debug("connection %s closed: %s", conn.id, e)
        finally:
            with self._lock:
                self._connections.discard(conn)
            conn.sock.close()

    def dispatch(self, conn: Connection, request: wire.Request) -> dict[str, Any]:
        """Run one command and build its reply (errors become ``ok: 0`` replies)."""
        body = request.body
        try:
            self.store.ttl.run_due()  # the TTL monitor's passes that came due (ttl.py)
            if len(body) == 0:
                raise errors.failed_to_parse("empty command")
            cmd = CommandBody(body, request.sequences)
            name = cmd.name
            db = body.get("$db") or request.legacy_collection.split(".", 1)[0] or "admin"
            spec = lookup(name, self.config.flavour)
            check_session_fields(self.config.flavour, name, body)
            check_concerns(name, body)
            write_concern = parse_write_concern(body) if name in WRITE_CONCERN_COMMANDS else None
            if spec.action not in (Action.NONE, Action.CUSTOM):
                self.auth.check(conn.principals, spec.action, db, command=name)
            reply = spec.handler(Context(self, conn, db), cmd)
            reply["ok"] = 1.0
            # The one place write concern is answered: the write is applied, then a one-member
            # replica set reports what it cannot satisfy (w > 1, an unknown tag set).
            if write_concern is not None and (concern_error := write_concern.error()) is not None:
                reply["writeConcernError"] = concern_error
        except errors.CommandError as e:
            reply = e.to_reply()
        except Exception as e:
            log.exception("command failed on connection %s", conn.id)
            reply = {"ok": 0.0, "errmsg": f"internal error: {e}", "code": 1, "codeName": "InternalError"}
        now = self.store.clock.now()
        reply["$clusterTime"] = {
            "clusterTime": now,
            "signature": {"hash": Binary(b"\x00" * 20), "keyId": Int64(0)},
        }
        reply["operationTime"] = now
        return reply


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def start_in_thread(config: ServerConfig) -> StandinServer:
    """Start a server on a daemon thread (for tests); ``server.stop()`` ends it."""
    server = StandinServer(config)
    server.bind()
    thread = threading.Thread(target=server.serve_forever, daemon=True, name=f"standin-{config.flavour}")
    thread.start()
    return server
