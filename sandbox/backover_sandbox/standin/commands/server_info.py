"""Handshake and server information: hello, ping, buildInfo, serverStatus, endSessions."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypedDict

from bson.int64 import Int64
from bson.objectid import ObjectId

from ..registry import Action, Context, command


class _Version(TypedDict):
    version: str
    maxWireVersion: int


#: What each flavour claims to be: DocumentDB 5.0 answers wire version 13, MongoDB 6.0 wire 17.
VERSIONS: dict[str, _Version] = {
    "mongodb": {"version": "6.0.0", "maxWireVersion": 17},
    "documentdb": {"version": "5.0.0", "maxWireVersion": 13},
}
_ELECTION_ID = ObjectId("7fffffff0000000000000001")


@command("hello", "isMaster", "ismaster", action=Action.NONE)
def hello(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    address = ctx.server.address
    legacy = next(iter(cmd)) != "hello"
    reply: dict[str, Any] = {
        "isWritablePrimary": True,
        "topologyVersion": None,
        "hosts": [address],
        "setName": ctx.server.config.set_name,
        "setVersion": 1,
        "electionId": _ELECTION_ID,
        "primary": address,
        "me": address,
        "secondary": False,
        "maxBsonObjectSize": 16 * 1024 * 1024,
        "maxMessageSizeBytes": 48_000_000,
        "maxWriteBatchSize": 100_000,
        "localTime": _local_time(ctx),
        "logicalSessionTimeoutMinutes": 30,
        "connectionId": ctx.conn.id,
        "minWireVersion": 0,
        "maxWireVersion": VERSIONS[ctx.flavour]["maxWireVersion"],
        "readOnly": False,
    }
    del reply["topologyVersion"]  # without it pymongo polls instead of streaming hello
    if legacy:
        reply["ismaster"] = reply.pop("isWritablePrimary")
    reply.update(ctx.server.auth.hello_fields(ctx.conn, cmd))
    return reply


@command("ping", action=Action.NONE)
def ping(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    return {}


@command("buildInfo", "buildinfo", action=Action.NONE)
def build_info(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    version = VERSIONS[ctx.flavour]["version"]
    return {
        "version": version,
        "gitVersion": "backover-standin",
        "versionArray": [int(p) for p in version.split(".")] + [0],
        "bits": 64,
        "maxBsonObjectSize": 16 * 1024 * 1024,
        "storageEngines": ["backover-standin"],
        "backoverStandin": {"flavour": ctx.flavour},
    }


@command("serverStatus", action=Action.CLUSTER_ADMIN)
def server_status(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "host": ctx.server.address,
        "version": VERSIONS[ctx.flavour]["version"],
        "process": "mongod",
        "pid": Int64(os.getpid()),
        "uptime": float(int(ctx.server.store.wall.time() - ctx.server.started_at)),
        "localTime": _local_time(ctx),
        "repl": {"setName": ctx.server.config.set_name, "isWritablePrimary": True},
    }


def _local_time(ctx: Context) -> datetime:
    """The server's time of day, in milliseconds as BSON dates carry it."""
    return datetime.fromtimestamp(int(ctx.server.store.wall.time() * 1000) / 1000, UTC)


@command("endSessions", "killSessions", action=Action.NONE)
def end_sessions(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    return {}


@command("whatsmyuri", action=Action.NONE)
def whats_my_uri(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    host, port = ctx.conn.peer[:2]
    return {"you": f"{host}:{port}"}
