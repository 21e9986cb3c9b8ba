"""SCRAM-SHA-1 / SCRAM-SHA-256 server side of the stand-in, driven by an independent client.

Unit tests run the conversation through the command handlers (``saslStart``/``saslContinue``)
with a small client written from RFC 5802/7677 here; the integration tests at the end
authenticate real pymongo clients over TCP against ``backover_sandbox.standin.server``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote_plus

import bson
import pymongo
import pymongo.errors
import pytest
from bson.raw_bson import RawBSONDocument
from pymongo.saslprep import saslprep

from backover.bsonvalues import RAW
from backover.mongo.errors import CommandError
from backover_sandbox.standin import auth as auth_mod
from backover_sandbox.standin.auth import (
    SCRAM_SHA_1,
    SCRAM_SHA_256,
    AuthManager,
    ScramConversation,
    derive_credential,
)
from backover_sandbox.standin.commands import users
from backover_sandbox.standin.registry import Context

FAST = {SCRAM_SHA_1: 4096, SCRAM_SHA_256: 4096}
BOTH = [pytest.param(SCRAM_SHA_1, id="sha1"), pytest.param(SCRAM_SHA_256, id="sha256")]


# --------------------------------------------------------------------------------------------
# A tiny client-side SCRAM, written from the RFCs (not from the server code)
# --------------------------------------------------------------------------------------------
@dataclass
class ScramClient:
    mechanism: str
    user: str
    password: str
    nonce: str = field(default_factory=lambda: base64.b64encode(os.urandom(24)).decode())
    server_signature: bytes = b""

    @property
    def _hash(self) -> tuple[str, Any]:
        return ("sha1", hashlib.sha1) if self.mechanism == SCRAM_SHA_1 else ("sha256", hashlib.sha256)

    @property
    def bare(self) -> str:
        name = self.user.replace("=", "=3D").replace(",", "=2C")
        return f"n={name},r={self.nonce}"

    def first(self) -> bytes:
        return f"n,,{self.bare}".encode()

    def final(self, server_first: bytes) -> bytes:
        attrs = dict(item.split("=", 1) for item in server_first.decode().split(","))
        assert attrs["r"].startswith(self.nonce)
        name, mod = self._hash
        if self.mechanism == SCRAM_SHA_1:
            secret = hashlib.md5(f"{self.user}:mongo:{self.password}".encode()).hexdigest().encode()
        else:
            secret = saslprep(self.password).encode()
        salted = hashlib.pbkdf2_hmac(name, secret, base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", mod).digest()
        server_key = hmac.new(salted, b"Server Key", mod).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        auth_message = f"{self.bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.new(mod(client_key).digest(), auth_message, mod).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self.server_signature = base64.b64encode(hmac.new(server_key, auth_message, mod).digest())
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> bool:
        return hmac.compare_digest(server_final, b"v=" + self.server_signature)


# --------------------------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------------------------
def raw(doc: dict[str, Any]) -> RawBSONDocument:
    """A command body as the server hands it to handlers."""
    return RawBSONDocument(bson.encode(doc), codec_options=RAW)


def make_conn(conn_id: int = 1) -> SimpleNamespace:
    return SimpleNamespace(id=conn_id, principals=set(), auth_state={})


@pytest.fixture
def manager() -> AuthManager:
    mgr = AuthManager(enabled=True, iterations=FAST)
    mgr.create_user("admin", "root", "pw", [{"role": "root", "db": "admin"}])
    mgr.create_user("shop", "app", "s3cret", ["readWrite"])
    return mgr


@pytest.fixture
def server(manager: AuthManager) -> SimpleNamespace:
    return SimpleNamespace(auth=manager, config=SimpleNamespace(flavour="mongodb", auth=True))


def ctx_for(server: SimpleNamespace, db: str, conn: SimpleNamespace | None = None) -> Context:
    return Context(server, conn or make_conn(), db)  # type: ignore[arg-type]


def start(ctx: Context, client: ScramClient, skip_empty: bool = True) -> dict[str, Any]:
    cmd = {
        "saslStart": 1,
        "mechanism": client.mechanism,
        "payload": bson.Binary(client.first()),
        "autoAuthorize": 1,
        "options": {"skipEmptyExchange": skip_empty},
        "$db": ctx.db,
    }
    return users.sasl_start(ctx, raw(cmd))


def cont(ctx: Context, payload: bytes, conversation_id: int = 1) -> dict[str, Any]:
    cmd = {
        "saslContinue": 1,
        "conversationId": conversation_id,
        "payload": bson.Binary(payload),
        "$db": ctx.db,
    }
    return users.sasl_continue(ctx, raw(cmd))


def login(ctx: Context, client: ScramClient, skip_empty: bool = True) -> None:
    """Run a whole conversation and check the server's signature."""
    first = start(ctx, client, skip_empty)
    second = cont(ctx, client.final(first["payload"]))
    assert client.verify(second["payload"])
    if not skip_empty:
        assert second["done"] is False
        second = cont(ctx, b"")
    assert second["done"] is True


def code_of(excinfo: pytest.ExceptionInfo[CommandError]) -> int:
    return excinfo.value.code


# --------------------------------------------------------------------------------------------
# RFC test vectors
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mechanism", "client_nonce", "server_first", "salt", "proof", "expected"),
    [
        pytest.param(
            SCRAM_SHA_1,
            "fyko+d2lbbFgONRv9qkxdawL",
            "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            "QSXCR+Q6sek8bf92",
            "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
            "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
            id="rfc5802-sha1",
        ),
        pytest.param(
            SCRAM_SHA_256,
            "rOprNGfwEbeRWgbNEkqO",
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "W22ZaJ0SNY7soEsUEjb6gQ==",
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
            id="rfc7677-sha256",
        ),
    ],
)
def test_rfc_vectors(
    mechanism: str, client_nonce: str, server_first: str, salt: str, proof: str, expected: str
) -> None:
    nonce = server_first.split(",")[0][2:]
    conv = ScramConversation(
        mechanism,
        "admin",
        skip_empty_exchange=True,
        user_name="user",
        gs2_header="n,,",
        client_first_bare=f"n=user,r={client_nonce}",
        server_first=server_first,
        nonce=nonce,
        step=1,
        credential=derive_credential(mechanism, b"pencil", 4096, base64.b64decode(salt)),
    )
    reply, done = conv.advance(f"c=biws,r={nonce},p={proof}".encode())
    assert reply.decode() == expected
    assert done is True


# --------------------------------------------------------------------------------------------
# conversations through the command handlers
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "skip_empty", [pytest.param(True, id="skipEmptyExchange"), pytest.param(False, id="three-steps")]
)
@pytest.mark.parametrize("mechanism", BOTH)
def test_conversation_authenticates(server: SimpleNamespace, mechanism: str, skip_empty: bool) -> None:
    ctx = ctx_for(server, "shop")
    first = start(ctx, ScramClient(mechanism, "app", "s3cret"), skip_empty)
    assert first["conversationId"] == 1 and first["done"] is False
    assert isinstance(first["payload"], bson.Binary) and first["payload"].subtype == 0
    assert ctx.conn.principals == set()
    login(ctx_for(server, "shop", ctx.conn), ScramClient(mechanism, "app", "s3cret"), skip_empty)
    assert ctx.conn.principals == {("app", "shop")}
    assert ctx.conn.auth_state == {}


@pytest.mark.parametrize("mechanism", BOTH)
def test_server_first_uses_stored_salt_and_iterations(server: SimpleNamespace, mechanism: str) -> None:
    client = ScramClient(mechanism, "app", "s3cret")
    reply = start(ctx_for(server, "shop"), client)
    attrs = dict(item.split("=", 1) for item in bytes(reply["payload"]).decode().split(","))
    cred = server.auth.get_user("shop", "app").credentials[mechanism]
    assert attrs["r"].startswith(client.nonce) and len(attrs["r"]) > len(client.nonce)
    assert base64.b64decode(attrs["s"]) == cred.salt
    assert int(attrs["i"]) == 4096


def test_default_iteration_counts_are_mongods() -> None:
    mgr = AuthManager()
    user = mgr.create_user("admin", "u", "pw", [])
    assert user.credentials[SCRAM_SHA_1].iterations == 10_000
    assert user.credentials[SCRAM_SHA_256].iterations == 15_000
    assert len(user.credentials[SCRAM_SHA_1].salt) == 16
    assert len(user.credentials[SCRAM_SHA_256].salt) == 28


@pytest.mark.parametrize("mechanism", BOTH)
def test_wrong_password_fails_with_18(server: SimpleNamespace, mechanism: str) -> None:
    ctx = ctx_for(server, "shop")
    client = ScramClient(mechanism, "app", "not-the-password")
    first = start(ctx, client)
    with pytest.raises(CommandError) as excinfo:
        cont(ctx, client.final(first["payload"]))
    assert (excinfo.value.code, excinfo.value.code_name) == (18, "AuthenticationFailed")
    assert excinfo.value.message == "Authentication failed."
    assert "not-the-password" not in repr(excinfo.value.to_reply())
    assert ctx.conn.principals == set()
    with pytest.raises(CommandError) as again:  # the conversation is gone
        cont(ctx, b"c=biws,r=x,p=AAAA")
    assert code_of(again) == 17


@pytest.mark.parametrize("mechanism", BOTH)
def test_unknown_user_gets_the_same_answer(server: SimpleNamespace, mechanism: str) -> None:
    with pytest.raises(CommandError) as excinfo:
        start(ctx_for(server, "shop"), ScramClient(mechanism, "nobody", "pw"))
    assert excinfo.value.to_reply()["errmsg"] == "Authentication failed."
    assert code_of(excinfo) == 18


def test_user_is_looked_up_in_the_authentication_database(server: SimpleNamespace) -> None:
    with pytest.raises(CommandError) as excinfo:
        start(ctx_for(server, "admin"), ScramClient(SCRAM_SHA_256, "app", "s3cret"))
    assert code_of(excinfo) == 18


def test_mechanism_the_user_lacks_is_masked_like_mongod(server: SimpleNamespace) -> None:
    """mongod fails the step with MechanismUnavailable and answers the client code 18."""
    server.auth.create_user("shop", "legacy", "pw", ["read"], mechanisms=[SCRAM_SHA_1])
    with pytest.raises(CommandError) as excinfo:
        start(ctx_for(server, "shop"), ScramClient(SCRAM_SHA_256, "legacy", "pw"))
    assert code_of(excinfo) == 18
    login(ctx_for(server, "shop"), ScramClient(SCRAM_SHA_1, "legacy", "pw"))


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512", "MONGODB-CR"])
def test_unsupported_mechanism_is_bad_value(server: SimpleNamespace, mechanism: str) -> None:
    with pytest.raises(CommandError) as excinfo:
        start(ctx_for(server, "shop"), ScramClient(mechanism, "app", "s3cret"))
    assert code_of(excinfo) == 2
    assert excinfo.value.message == f"Unsupported mechanism '{mechanism}' on authentication database 'shop'"


@pytest.mark.parametrize(
    ("stored", "typed"),
    [
        pytest.param("I\u00adX", "IX", id="soft-hyphen-mapped-to-nothing"),
        pytest.param("\u2168", "IX", id="roman-numeral-nfkc"),
        pytest.param("p\u00e4ss\u2003w\u00f6rd", "p\u00e4ss w\u00f6rd", id="em-space-mapped-to-space"),
    ],
)
def test_sha256_saslpreps_non_ascii_passwords(server: SimpleNamespace, stored: str, typed: str) -> None:
    server.auth.create_user("shop", "intl", stored, ["read"])
    login(ctx_for(server, "shop"), ScramClient(SCRAM_SHA_256, "intl", typed))
    login(ctx_for(server, "shop"), ScramClient(SCRAM_SHA_256, "intl", stored))


def test_sha1_uses_the_raw_non_ascii_password(server: SimpleNamespace) -> None:
    server.auth.create_user("shop", "intl", "p\u00e4ss", ["read"])
    login(ctx_for(server, "shop"), ScramClient(SCRAM_SHA_1, "intl", "p\u00e4ss"))
    with pytest.raises(CommandError):
        login(ctx_for(server, "shop"), ScramClient(SCRAM_SHA_1, "intl", "pa\u0308ss"))  # no SASLprep


def test_prohibited_password_is_refused_without_echoing_it(server: SimpleNamespace) -> None:
    with pytest.raises(CommandError) as excinfo:
        server.auth.create_user("shop", "bad", "pw\u0007", ["read"])
    assert code_of(excinfo) == 2 and "pw\u0007" not in excinfo.value.message


def test_user_name_with_comma_and_equals(server: SimpleNamespace) -> None:
    server.auth.create_user("shop", "a,b=c", "pw", ["read"])
    login(ctx_for(server, "shop"), ScramClient(SCRAM_SHA_256, "a,b=c", "pw"))


def test_password_is_never_stored(manager: AuthManager) -> None:
    user = manager.create_user("shop", "secretive", "hunter2-unique", ["read"])
    dumped = repr(user) + repr(vars(manager)) + repr([c.to_doc() for c in user.credentials.values()])
    assert "hunter2-unique" not in dumped
    digest = hashlib.md5(b"secretive:mongo:hunter2-unique").hexdigest()
    assert digest not in dumped


def test_base64_string_payloads_are_answered_in_kind(server: SimpleNamespace) -> None:
    ctx = ctx_for(server, "shop")
    client = ScramClient(SCRAM_SHA_256, "app", "s3cret")
    cmd = {"saslStart": 1, "mechanism": SCRAM_SHA_256, "payload": base64.b64encode(client.first()).decode()}
    first = users.sasl_start(ctx, raw(cmd))
    assert isinstance(first["payload"], str)
    final = base64.b64encode(client.final(base64.b64decode(first["payload"]))).decode()
    second = users.sasl_continue(ctx, raw({"saslContinue": 1, "conversationId": 1, "payload": final}))
    assert client.verify(base64.b64decode(second["payload"]))
    assert second["done"] is False  # no skipEmptyExchange: one more empty round trip
    third = users.sasl_continue(ctx, raw({"saslContinue": 1, "conversationId": 1, "payload": ""}))
    assert (third["done"], third["payload"]) == (True, "")
    assert ctx.conn.principals == {("app", "shop")}


@pytest.mark.parametrize(
    ("final", "why"),
    [
        pytest.param(lambda nonce, proof: f"c=cD10bHMtdW5pcXVl,r={nonce},p={proof}", "channel-binding"),
        pytest.param(lambda nonce, proof: f"c=biws,r={nonce}x,p={proof}", "nonce"),
        pytest.param(lambda nonce, proof: f"c=biws,r={nonce},p=AAAA", "short-proof"),
        pytest.param(lambda nonce, proof: f"c=biws,r={nonce}", "no-proof"),
        pytest.param(lambda nonce, proof: f"c=biws,r={nonce},p=!!!!", "bad-base64"),
    ],
)
def test_tampered_client_final_fails(server: SimpleNamespace, final: Any, why: str) -> None:
    ctx = ctx_for(server, "shop")
    client = ScramClient(SCRAM_SHA_256, "app", "s3cret")
    first = start(ctx, client)
    good = client.final(first["payload"]).decode()
    nonce = good.split(",")[1][2:]
    proof = good.rsplit(",p=", 1)[1]
    with pytest.raises(CommandError) as excinfo:
        cont(ctx, final(nonce, proof).encode())
    assert code_of(excinfo) == 18
    assert ctx.conn.principals == set()


def test_channel_binding_requested_fails(server: SimpleNamespace) -> None:
    cmd = {"saslStart": 1, "mechanism": SCRAM_SHA_256, "payload": bson.Binary(b"p=tls-unique,,n=app,r=abc")}
    with pytest.raises(CommandError) as excinfo:
        users.sasl_start(ctx_for(server, "shop"), raw(cmd))
    assert code_of(excinfo) == 18


def test_sasl_continue_protocol_errors(server: SimpleNamespace) -> None:
    ctx = ctx_for(server, "shop")
    with pytest.raises(CommandError) as no_session:
        cont(ctx, b"")
    assert (code_of(no_session), no_session.value.message) == (17, "No SASL session state found")
    client = ScramClient(SCRAM_SHA_256, "app", "s3cret")
    first = start(ctx, client)
    with pytest.raises(CommandError) as wrong_id:
        cont(ctx, client.final(first["payload"]), conversation_id=2)
    assert (code_of(wrong_id), wrong_id.value.message) == (17, "sasl: Mismatched conversation id")
    with pytest.raises(CommandError) as missing:
        users.sasl_start(ctx, raw({"saslStart": 1, "payload": bson.Binary(b"")}))
    assert code_of(missing) == 40414


def test_switching_database_mid_conversation_fails(server: SimpleNamespace) -> None:
    conn = make_conn()
    client = ScramClient(SCRAM_SHA_256, "app", "s3cret")
    first = start(ctx_for(server, "shop", conn), client)
    with pytest.raises(CommandError) as excinfo:
        cont(ctx_for(server, "admin", conn), client.final(first["payload"]))
    assert code_of(excinfo) == 17


def test_user_dropped_during_conversation_fails(server: SimpleNamespace) -> None:
    ctx = ctx_for(server, "shop")
    client = ScramClient(SCRAM_SHA_256, "app", "s3cret")
    first = start(ctx, client)
    server.auth.drop_user("shop", "app")
    with pytest.raises(CommandError) as excinfo:
        cont(ctx, client.final(first["payload"]))
    assert code_of(excinfo) == 18 and ctx.conn.principals == set()


def test_one_user_per_connection_like_mongod_6(server: SimpleNamespace) -> None:
    server.auth.create_user("shop", "other", "pw", ["read"])
    conn = make_conn()
    login(ctx_for(server, "shop", conn), ScramClient(SCRAM_SHA_256, "app", "s3cret"))
    login(ctx_for(server, "shop", conn), ScramClient(SCRAM_SHA_256, "app", "s3cret"))  # same user: fine
    with pytest.raises(CommandError) as same_db:
        login(ctx_for(server, "shop", conn), ScramClient(SCRAM_SHA_256, "other", "pw"))
    assert code_of(same_db) == 5626701
    with pytest.raises(CommandError) as other_db:
        login(ctx_for(server, "admin", conn), ScramClient(SCRAM_SHA_256, "root", "pw"))
    assert code_of(other_db) == 5626702
    users.logout(ctx_for(server, "shop", conn), raw({"logout": 1}))
    assert conn.principals == set()
    login(ctx_for(server, "admin", conn), ScramClient(SCRAM_SHA_256, "root", "pw"))
    assert conn.principals == {("root", "admin")}


def test_authenticate_command_answers_like_mongod_6(server: SimpleNamespace) -> None:
    ctx = ctx_for(server, "admin")
    for mechanism in ("SCRAM-SHA-256", "MONGODB-CR"):
        with pytest.raises(CommandError) as excinfo:
            users.authenticate(ctx, raw({"authenticate": 1, "mechanism": mechanism, "user": "root"}))
        assert (code_of(excinfo), excinfo.value.message) == (2, f"Unsupported mechanism: {mechanism}")
    with pytest.raises(CommandError) as x509:
        users.authenticate(ctx, raw({"authenticate": 1, "mechanism": "MONGODB-X509"}))
    assert code_of(x509) == 18


# --------------------------------------------------------------------------------------------
# hello: saslSupportedMechs and speculativeAuthenticate
# --------------------------------------------------------------------------------------------
def test_sasl_supported_mechs(manager: AuthManager) -> None:
    manager.create_user("shop", "only256", "pw", ["read"], mechanisms=[SCRAM_SHA_256])
    conn = make_conn()
    assert manager.hello_fields(conn, raw({"hello": 1, "saslSupportedMechs": "admin.root"})) == {
        "saslSupportedMechs": [SCRAM_SHA_1, SCRAM_SHA_256]
    }
    assert manager.hello_fields(conn, raw({"hello": 1, "saslSupportedMechs": "shop.only256"})) == {
        "saslSupportedMechs": [SCRAM_SHA_256]
    }
    assert manager.hello_fields(conn, raw({"hello": 1, "saslSupportedMechs": "shop.nobody"})) == {}
    assert manager.hello_fields(conn, raw({"hello": 1})) == {}
    with pytest.raises(CommandError):
        manager.hello_fields(conn, raw({"hello": 1, "saslSupportedMechs": "nodot"}))


@pytest.mark.parametrize("mechanism", BOTH)
def test_speculative_authenticate_saves_a_round_trip(server: SimpleNamespace, mechanism: str) -> None:
    conn = make_conn()
    client = ScramClient(mechanism, "root", "pw")
    spec = {
        "saslStart": 1,
        "mechanism": mechanism,
        "payload": bson.Binary(client.first()),
        "autoAuthorize": 1,
        "options": {"skipEmptyExchange": True},
        "db": "admin",
    }
    fields = server.auth.hello_fields(conn, raw({"hello": 1, "speculativeAuthenticate": spec}))
    reply = fields["speculativeAuthenticate"]
    assert reply["conversationId"] == 1 and reply["done"] is False
    second = cont(ctx_for(server, "admin", conn), client.final(reply["payload"]))
    assert client.verify(second["payload"]) and second["done"] is True
    assert conn.principals == {("root", "admin")}


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({"saslStart": 1, "mechanism": SCRAM_SHA_256, "db": "admin"}, id="no-payload"),
        pytest.param(
            {
                "saslStart": 1,
                "mechanism": SCRAM_SHA_256,
                "payload": bson.Binary(b"n,,n=ghost,r=abc"),
                "db": "admin",
            },
            id="unknown-user",
        ),
        pytest.param(
            {"saslStart": 1, "mechanism": SCRAM_SHA_256, "payload": bson.Binary(b"n,,n=root,r=abc")},
            id="no-db",
        ),
        pytest.param({"authenticate": 1, "mechanism": "MONGODB-X509", "db": "$external"}, id="x509"),
    ],
)
def test_failed_speculative_authenticate_is_left_out(manager: AuthManager, spec: dict[str, Any]) -> None:
    assert manager.hello_fields(make_conn(), raw({"hello": 1, "speculativeAuthenticate": spec})) == {}


def test_iteration_constants_match_mongod() -> None:
    assert auth_mod.DEFAULT_ITERATIONS == {SCRAM_SHA_1: 10_000, SCRAM_SHA_256: 15_000}


# --------------------------------------------------------------------------------------------
# INTEGRATION: real pymongo over TCP against backover_sandbox.standin.server
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def live_server():
    """A stand-in with auth on and root/pw (needs ``backover_sandbox.standin.server``)."""
    from backover_sandbox.standin.server import ServerConfig, start_in_thread

    srv = start_in_thread(
        ServerConfig(flavour="mongodb", port=0, auth=True, root_user="root", root_password="pw")
    )
    yield srv
    srv.stop()


def _client(srv: Any, user: str, password: str, **kw: Any) -> Any:
    uri = f"mongodb://{user}:{password}@127.0.0.1:{srv.port}/?directConnection=true"
    return pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000, **kw)


@pytest.mark.parametrize("mechanism", [*BOTH, pytest.param(None, id="negotiated")])
def test_pymongo_authenticates(live_server: Any, mechanism: str | None) -> None:
    kw = {"authMechanism": mechanism} if mechanism else {}
    with _client(live_server, "root", "pw", **kw) as client:
        status = client.admin.command("connectionStatus")
        assert status["authInfo"]["authenticatedUsers"] == [{"user": "root", "db": "admin"}]
        assert status["authInfo"]["authenticatedUserRoles"] == [{"role": "root", "db": "admin"}]


@pytest.mark.parametrize("mechanism", BOTH)
def test_pymongo_wrong_password_is_code_18(live_server: Any, mechanism: str) -> None:
    with _client(live_server, "root", "wrong", authMechanism=mechanism) as client:
        with pytest.raises(pymongo.errors.OperationFailure) as excinfo:
            client.admin.command("ping")
    assert excinfo.value.code == 18


def test_pymongo_non_ascii_password(live_server: Any) -> None:
    with _client(live_server, "root", "pw") as root:
        root.admin.command("createUser", "intl", pwd="\u2168 p\u00e4ss", roles=["readAnyDatabase"])
    with _client(live_server, "intl", quote_plus("\u2168 p\u00e4ss"), authMechanism=SCRAM_SHA_256) as client:
        assert client.admin.command("connectionStatus")["authInfo"]["authenticatedUsers"] == [
            {"user": "intl", "db": "admin"}
        ]
