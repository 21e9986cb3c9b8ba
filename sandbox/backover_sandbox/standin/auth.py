"""Users, SCRAM authentication and privilege checks of the stand-in server.

User store
    Users live per database (``user@db``) with SCRAM-SHA-1 and SCRAM-SHA-256 credentials stored
    the way mongod stores them (salt, iteration count, StoredKey, ServerKey): the clear password is
    never kept. SCRAM-SHA-1 derives its keys from the MongoDB password digest
    ``md5("user:mongo:password")``; SCRAM-SHA-256 from the SASLprep'd password.

SCRAM (RFC 5802 / RFC 7677, as mongod does it)
    ``saslStart`` answers ``r=<client+server nonce>,s=<salt>,i=<iterations>``; ``saslContinue``
    checks the proof and answers ``v=<server signature>``. With ``options.skipEmptyExchange`` the
    conversation is done after that step, otherwise one more empty round trip completes it. The
    conversation id is always 1, as on mongod 4.4+. Every failure of a step (unknown user, wrong
    password, a mechanism the user has no credentials for, a malformed message) answers code 18
    ``Authentication failed.``, exactly as mongod masks them.

Privileges (``ROLE_ACTIONS``)
    A built-in role grants :class:`~backover_sandbox.standin.registry.Action` s on its own database
    (``read``, ``readWrite``, ``dbAdmin``, ``userAdmin``, ``dbOwner``), on every database except
    ``local`` and ``config`` (the ``*AnyDatabase`` roles, ``backup``, ``restore``; granted in
    ``admin`` only), and/or cluster-wide (``clusterAdmin``, ``clusterManager``, ``clusterMonitor``,
    ``root``). Privileges are computed from the user store on every check, so a role change or a
    dropped user takes effect on the very next command of an authenticated connection.

    mongod's privileges are finer than one action per command; ``COMMAND_ALTERNATIVES`` lists the
    commands for which another action is also enough (``dbAdmin`` may ``listCollections``,
    ``create``, ``createIndexes``...; ``read`` may ``collStats``, ``dbStats``). They apply when the
    caller passes the command name to :meth:`AuthManager.check`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pymongo.saslprep import saslprep

from backover.bsonvalues import to_plain
from backover.mongo.errors import AUTHENTICATION_FAILED, USER_NOT_FOUND, CommandError, bad_value, unauthorized

from .registry import Action

SCRAM_SHA_1 = "SCRAM-SHA-1"
SCRAM_SHA_256 = "SCRAM-SHA-256"
#: Mechanisms in the order mongod advertises them in ``saslSupportedMechs``.
MECHANISMS: tuple[str, ...] = (SCRAM_SHA_1, SCRAM_SHA_256)

#: mongod's defaults (``scramIterationCount`` and ``scramSHA256IterationCount``).
DEFAULT_ITERATIONS: dict[str, int] = {SCRAM_SHA_1: 10_000, SCRAM_SHA_256: 15_000}

#: Databases the ``*AnyDatabase`` roles do not cover.
INTERNAL_DBS = frozenset({"local", "config"})

CONVERSATION_ID = 1
_SCRAM_STATE_KEY = "scram"

ROLE_NOT_FOUND = 31
USER_ALREADY_EXISTS = 51003
PROTOCOL_ERROR = 17
AUTH_FAILED_MESSAGE = "Authentication failed."

RoleName = tuple[str, str]  # (role, db)
Principal = tuple[str, str]  # (user, db)


# --------------------------------------------------------------------------------------------
# Roles and privileges
# --------------------------------------------------------------------------------------------
_R, _W, _DBA, _UA = Action.READ, Action.WRITE, Action.DB_ADMIN, Action.USER_ADMIN
_ALL_DB = frozenset({_R, _W, _DBA, _UA})


@dataclass(frozen=True)
class RoleSpec:
    """What one built-in role grants.

    :param own_db: actions on the database the role is granted in.
    :param any_db: actions on every database but ``local``/``config`` (role granted in ``admin``).
    :param internal_dbs: actions on ``local`` and ``config`` (role granted in ``admin``).
    :param cluster: grants ``Action.CLUSTER_ADMIN`` (role granted in ``admin``).
    :param admin_only: the role exists only in ``admin`` (``readAnyDatabase@shop`` does not).
    """

    own_db: frozenset[Action] = frozenset()
    any_db: frozenset[Action] = frozenset()
    internal_dbs: frozenset[Action] = frozenset()
    cluster: bool = False
    admin_only: bool = False


def _admin_role(
    any_db: Iterable[Action] = (), internal: Iterable[Action] = (), cluster: bool = False
) -> RoleSpec:
    return RoleSpec(
        any_db=frozenset(any_db), internal_dbs=frozenset(internal), cluster=cluster, admin_only=True
    )


#: Built-in roles (user-defined roles are not supported).
ROLE_ACTIONS: dict[str, RoleSpec] = {
    "read": RoleSpec(own_db=frozenset({_R})),
    "readWrite": RoleSpec(own_db=frozenset({_R, _W})),
    # mongod's dbAdmin reads no user data but may list/stat collections and indexes and
    # create/drop collections and indexes (see COMMAND_ALTERNATIVES) and drop the database.
    "dbAdmin": RoleSpec(own_db=frozenset({_DBA})),
    "userAdmin": RoleSpec(own_db=frozenset({_UA})),
    "dbOwner": RoleSpec(own_db=_ALL_DB),
    "readAnyDatabase": _admin_role(any_db={_R}),
    "readWriteAnyDatabase": _admin_role(any_db={_R, _W}),
    "dbAdminAnyDatabase": _admin_role(any_db={_DBA}),
    "userAdminAnyDatabase": _admin_role(any_db={_UA}),
    "backup": _admin_role(any_db={_R}, internal={_R}),
    "restore": _admin_role(any_db={_W}, internal={_W}),
    # Cluster roles read the local/config metadata (oplog, sessions, chunks) like mongod's.
    "clusterMonitor": _admin_role(internal={_R}, cluster=True),
    "clusterManager": _admin_role(internal={_R, _W}, cluster=True),
    "clusterAdmin": _admin_role(internal={_R, _W}, cluster=True),
    "root": _admin_role(any_db=_ALL_DB, internal=_ALL_DB, cluster=True),
}

#: Commands for which another action than the registered one is also enough (mongod grants
#: ``listCollections``/``createIndex``/... to dbAdmin, ``collStats``/``dbStats`` to read).
COMMAND_ALTERNATIVES: dict[str, frozenset[Action]] = {
    **dict.fromkeys(
        (
            "listCollections",
            "listIndexes",
            "create",
            "drop",
            "createIndexes",
            "dropIndexes",
            "collMod",
            "validate",
            "compact",
            "reIndex",
            "convertToCapped",
            "profile",
        ),
        frozenset({_DBA}),
    ),
    **dict.fromkeys(("collStats", "dbStats", "dataSize", "dbHash"), frozenset({_R, _DBA})),
}


def role_actions(role: str, role_db: str, db: str) -> frozenset[Action]:
    """The actions that ``role@role_db`` grants on database ``db`` (cluster action included)."""
    spec = ROLE_ACTIONS.get(role)
    if spec is None:
        return frozenset()
    actions: set[Action] = set()
    if role_db == db:
        actions |= spec.own_db
    if role_db == "admin":
        actions |= spec.internal_dbs if db in INTERNAL_DBS else spec.any_db
        if spec.cluster:
            actions.add(Action.CLUSTER_ADMIN)
    return frozenset(actions)


def role_exists(role: str, db: str) -> bool:
    """Whether ``role@db`` is a built-in role (the admin-only ones exist only in ``admin``)."""
    spec = ROLE_ACTIONS.get(role)
    return spec is not None and (not spec.admin_only or db == "admin")


def parse_role(value: Any, default_db: str) -> RoleName:
    """A role given as ``"name"`` (on ``default_db``) or ``{role, db}``, validated (code 31)."""
    if isinstance(value, str):
        name, db = value, default_db
    elif isinstance(value, Mapping):
        given_name, given_db = value.get("role"), value.get("db")
        if not isinstance(given_name, str):
            raise bad_value('Missing expected field "role"')
        if not isinstance(given_db, str):
            raise bad_value('Missing expected field "db"')
        name, db = given_name, given_db
    else:
        raise bad_value("Role names must be either strings or objects")
    if not role_exists(name, db):
        raise CommandError(ROLE_NOT_FOUND, "RoleNotFound", f"Could not find role: {name}@{db}")
    return (name, db)


def parse_roles(values: Iterable[Any], default_db: str) -> list[RoleName]:
    """Parse and validate a role list, dropping duplicates but keeping the order."""
    roles: list[RoleName] = []
    for value in values:
        role = parse_role(value, default_db)
        if role not in roles:
            roles.append(role)
    return roles


# --------------------------------------------------------------------------------------------
# Credentials
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Hash:
    """The hash family of one SCRAM mechanism."""

    name: str
    digestmod: Callable[..., Any]
    salt_length: int

    def hmac(self, key: bytes, msg: bytes) -> bytes:
        return hmac.new(key, msg, self.digestmod).digest()

    def h(self, data: bytes) -> bytes:
        return self.digestmod(data).digest()

    @property
    def size(self) -> int:
        return self.digestmod().digest_size


_HASHES: dict[str, _Hash] = {
    SCRAM_SHA_1: _Hash("sha1", hashlib.sha1, 16),
    SCRAM_SHA_256: _Hash("sha256", hashlib.sha256, 28),
}


def mongo_password_digest(user: str, password: str) -> str:
    """MongoDB's legacy password digest, the SCRAM-SHA-1 "password"."""
    return hashlib.md5(f"{user}:mongo:{password}".encode()).hexdigest()


def prepare_password(mechanism: str, user: str, password: str, *, digested: bool = False) -> bytes:
    """The bytes SCRAM salts for ``mechanism`` (``digested``: SCRAM-SHA-1 password is the digest).

    Raises :class:`CommandError` BadValue (without the password) when SASLprep rejects it.
    """
    if mechanism == SCRAM_SHA_1:
        return (password if digested else mongo_password_digest(user, password)).encode()
    try:
        return saslprep(password).encode()
    except ValueError:
        raise bad_value("Could not SASLprep the password") from None


@dataclass(frozen=True)
class ScramCredential:
    """One mechanism's stored credential: no clear password, only what mongod keeps."""

    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes

    def to_doc(self) -> dict[str, Any]:
        """The credential as mongod shows it with ``usersInfo showCredentials``."""
        return {
            "iterationCount": self.iterations,
            "salt": base64.b64encode(self.salt).decode(),
            "storedKey": base64.b64encode(self.stored_key).decode(),
            "serverKey": base64.b64encode(self.server_key).decode(),
        }

    def __repr__(self) -> str:  # keep keys out of logs and tracebacks
        return f"ScramCredential(iterations={self.iterations})"


def derive_credential(
    mechanism: str, prepared_password: bytes, iterations: int, salt: bytes | None = None
) -> ScramCredential:
    """SaltedPassword -> ClientKey -> StoredKey, ServerKey (RFC 5802 section 3)."""
    hsh = _HASHES[mechanism]
    salt = os.urandom(hsh.salt_length) if salt is None else salt
    salted = hashlib.pbkdf2_hmac(hsh.name, prepared_password, salt, iterations)
    client_key = hsh.hmac(salted, b"Client Key")
    return ScramCredential(iterations, salt, hsh.h(client_key), hsh.hmac(salted, b"Server Key"))


# --------------------------------------------------------------------------------------------
# Users
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class User:
    """A snapshot of one user (the store replaces it on every change)."""

    name: str
    db: str
    user_id: uuid.UUID
    credentials: Mapping[str, ScramCredential]
    roles: tuple[RoleName, ...]
    custom_data: Mapping[str, Any] | None = None

    @property
    def full_name(self) -> str:
        return f"{self.name}@{self.db}"

    @property
    def mechanisms(self) -> list[str]:
        return [m for m in MECHANISMS if m in self.credentials]

    def role_docs(self) -> list[dict[str, str]]:
        return [{"role": role, "db": db} for role, db in self.roles]


def parse_mechanisms(mechanisms: Iterable[str] | None) -> list[str]:
    """Validate a ``mechanisms`` list (None = every SCRAM mechanism), in mongod's order."""
    if mechanisms is None:
        return list(MECHANISMS)
    if isinstance(mechanisms, str):
        raise bad_value("mechanisms field must be an array")
    wanted = list(mechanisms)
    if not wanted:
        raise bad_value("mechanisms field must not be empty")
    for mech in wanted:
        if mech not in MECHANISMS:
            raise bad_value(f"Unknown auth mechanism '{mech}'")
    return [m for m in MECHANISMS if m in wanted]


def user_not_found(name: str, db: str) -> CommandError:
    return CommandError(USER_NOT_FOUND, "UserNotFound", f"User '{name}@{db}' not found")


def authentication_failed() -> CommandError:
    """The one answer a client gets for any failed authentication step (as mongod)."""
    return CommandError(AUTHENTICATION_FAILED, "AuthenticationFailed", AUTH_FAILED_MESSAGE)


def protocol_error(message: str) -> CommandError:
    return CommandError(PROTOCOL_ERROR, "ProtocolError", message)


# --------------------------------------------------------------------------------------------
# SCRAM server conversation
# --------------------------------------------------------------------------------------------
class ScramFailure(Exception):
    """A SCRAM step failed; the reason is for tests only, the client sees code 18."""


def _decode_username(raw: str) -> str:
    """RFC 5802 saslname: ``=2C`` is ``,``, ``=3D`` is ``=``, any other ``=`` is an error."""
    out = raw.replace("=2C", ",").replace("=3D", "=")
    if "=" in raw.replace("=2C", "").replace("=3D", ""):
        raise ScramFailure("invalid username encoding")
    return out


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ScramFailure("invalid base64") from None


@dataclass
class ScramConversation:
    """The server side of one SCRAM conversation on one connection."""

    mechanism: str
    db: str
    skip_empty_exchange: bool = False
    user_name: str = ""
    gs2_header: str = ""
    client_first_bare: str = ""
    server_first: str = ""
    nonce: str = ""
    credential: ScramCredential | None = field(default=None, repr=False)
    step: int = 0
    proof_ok: bool = False

    @property
    def hash_family(self) -> _Hash:
        return _HASHES[self.mechanism]

    def first(self, payload: bytes, lookup: Callable[[str, str], User | None]) -> bytes:
        """Parse client-first, answer server-first (``r=...,s=...,i=...``)."""
        text = _text(payload)
        parts = text.split(",", 2)
        if len(parts) != 3:
            raise ScramFailure("malformed client-first message")
        cbind, authzid, bare = parts
        if cbind not in ("n", "y"):
            raise ScramFailure("channel binding is not supported")
        attrs = bare.split(",")
        if len(attrs) < 2 or not attrs[0].startswith("n=") or not attrs[1].startswith("r="):
            raise ScramFailure("malformed client-first message")
        user = _decode_username(attrs[0][2:])
        if authzid and authzid != f"a={attrs[0][2:]}":
            raise ScramFailure("authzid does not match the user name")
        client_nonce = attrs[1][2:]
        if not client_nonce:
            raise ScramFailure("empty client nonce")
        found = lookup(self.db, user)
        if found is None:
            raise ScramFailure("unknown user")
        credential = found.credentials.get(self.mechanism)
        if credential is None:
            raise ScramFailure(f"MechanismUnavailable: user has no {self.mechanism} credentials")
        self.user_name, self.credential = user, credential
        self.gs2_header = f"{cbind},{authzid},"
        self.client_first_bare = bare
        self.nonce = client_nonce + base64.b64encode(os.urandom(24)).decode()
        salt = base64.b64encode(credential.salt).decode()
        self.server_first = f"r={self.nonce},s={salt},i={credential.iterations}"
        self.step = 1
        return self.server_first.encode()

    def final(self, payload: bytes) -> bytes:
        """Check client-final's channel binding, nonce and proof; answer ``v=<signature>``."""
        text = _text(payload)
        without_proof, sep, proof_b64 = text.rpartition(",p=")
        if not sep:
            raise ScramFailure("client-final message has no proof")
        attrs = without_proof.split(",")
        if len(attrs) < 2 or not attrs[0].startswith("c=") or not attrs[1].startswith("r="):
            raise ScramFailure("malformed client-final message")
        expected_c = base64.b64encode(self.gs2_header.encode()).decode()
        if not hmac.compare_digest(attrs[0][2:].encode(), expected_c.encode()):
            raise ScramFailure("channel binding mismatch")
        if not hmac.compare_digest(attrs[1][2:].encode(), self.nonce.encode()):
            raise ScramFailure("nonce mismatch")
        auth_message = f"{self.client_first_bare},{self.server_first},{without_proof}".encode()
        self._verify_proof(_b64decode(proof_b64), auth_message)
        assert self.credential is not None
        signature = self.hash_family.hmac(self.credential.server_key, auth_message)
        self.step = 2
        self.proof_ok = True
        return b"v=" + base64.b64encode(signature)

    def _verify_proof(self, proof: bytes, auth_message: bytes) -> None:
        assert self.credential is not None
        hsh = self.hash_family
        if len(proof) != hsh.size:
            raise ScramFailure("invalid proof length")
        client_signature = hsh.hmac(self.credential.stored_key, auth_message)
        client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
        if not hmac.compare_digest(hsh.h(client_key), self.credential.stored_key):
            raise ScramFailure("wrong proof")

    def advance(self, payload: bytes) -> tuple[bytes, bool]:
        """Run the next ``saslContinue`` step: (reply payload, done)."""
        if self.step == 1:
            reply = self.final(payload)
            return reply, self.skip_empty_exchange
        if self.step == 2 and not self.skip_empty_exchange:
            if payload:
                raise ScramFailure("unexpected payload after the server signature")
            self.step = 3
            return b"", True
        raise ScramFailure("conversation already complete")


def _text(payload: bytes) -> str:
    try:
        return bytes(payload).decode("utf-8")
    except UnicodeDecodeError:
        raise ScramFailure("payload is not UTF-8") from None


# --------------------------------------------------------------------------------------------
# The manager
# --------------------------------------------------------------------------------------------
class AuthManager:
    """Thread-safe user store, SCRAM server and privilege checks.

    :param enabled: False lets every command through (authentication still works).
    :param iterations: SCRAM iteration counts per mechanism (mongod's defaults otherwise).
    """

    def __init__(self, enabled: bool = True, *, iterations: Mapping[str, int] | None = None) -> None:
        self.enabled = enabled
        self.iterations = {**DEFAULT_ITERATIONS, **(iterations or {})}
        self._users: dict[tuple[str, str], User] = {}  # (db, name) -> user
        self._lock = threading.RLock()

    # -- user store ----------------------------------------------------------------------------
    def create_user(
        self,
        db: str,
        name: str,
        password: str,
        roles: Iterable[Any],
        mechanisms: Iterable[str] | None = None,
        *,
        custom_data: Mapping[str, Any] | None = None,
        digest_password: bool = True,
    ) -> User:
        """Create ``name@db``; roles are ``{"role", "db"}`` documents or names on ``db``.

        Raises code 51003 when the user exists, 31 for an unknown role, 2 for bad values.
        """
        _check_user_name(name, db)
        role_list = parse_roles(roles, db)
        credentials = self._derive_all(name, password, parse_mechanisms(mechanisms), digest_password)
        user = User(name, db, uuid.uuid4(), credentials, tuple(role_list), _copy(custom_data))
        with self._lock:
            if (db, name) in self._users:
                raise CommandError(USER_ALREADY_EXISTS, "Location51003", f'User "{name}@{db}" already exists')
            self._users[(db, name)] = user
        return user

    def update_user(
        self,
        db: str,
        name: str,
        *,
        password: str | None = None,
        roles: Iterable[Any] | None = None,
        mechanisms: Iterable[str] | None = None,
        custom_data: Mapping[str, Any] | None = None,
        digest_password: bool = True,
    ) -> User:
        """Change a user's password (all mechanisms unless ``mechanisms``), roles or customData.

        ``mechanisms`` without a password keeps only those credentials (a subset of the current
        ones), as mongod's ``updateUser``.
        """
        role_list = None if roles is None else tuple(parse_roles(roles, db))
        wanted = None if mechanisms is None else parse_mechanisms(mechanisms)
        credentials = None
        if password is not None:
            credentials = self._derive_all(name, password, wanted or list(MECHANISMS), digest_password)
        with self._lock:
            user = self._require(db, name)
            changes: dict[str, Any] = {}
            if credentials is not None:
                changes["credentials"] = credentials
            elif wanted is not None:
                changes["credentials"] = _subset_credentials(user, wanted)
            if role_list is not None:
                changes["roles"] = role_list
            if custom_data is not None:
                changes["custom_data"] = _copy(custom_data)
            user = replace(user, **changes)
            self._users[(db, name)] = user
            return user

    def drop_user(self, db: str, name: str) -> None:
        """Remove ``name@db`` (code 11 UserNotFound if absent); its connections lose everything."""
        with self._lock:
            if self._users.pop((db, name), None) is None:
                raise user_not_found(name, db)

    def drop_all_users(self, db: str) -> int:
        """Remove every user of ``db``; returns how many."""
        with self._lock:
            keys = [key for key in self._users if key[0] == db]
            for key in keys:
                del self._users[key]
            return len(keys)

    def grant_roles(self, db: str, name: str, roles: Iterable[Any]) -> User:
        """Add roles (names on ``db`` or ``{role, db}``) to ``name@db``."""
        new = parse_roles(roles, db)
        with self._lock:
            user = self._require(db, name, _could_not_find)
            merged = list(user.roles) + [r for r in new if r not in user.roles]
            user = replace(user, roles=tuple(merged))
            self._users[(db, name)] = user
            return user

    def revoke_roles(self, db: str, name: str, roles: Iterable[Any]) -> User:
        """Remove roles from ``name@db`` (roles it does not hold are ignored, as mongod)."""
        gone = set(parse_roles(roles, db))
        with self._lock:
            user = self._require(db, name, _could_not_find)
            user = replace(user, roles=tuple(r for r in user.roles if r not in gone))
            self._users[(db, name)] = user
            return user

    def get_user(self, db: str, name: str) -> User | None:
        """The current snapshot of ``name@db``, or None."""
        with self._lock:
            return self._users.get((db, name))

    def list_users(self, db: str | None = None) -> list[User]:
        """Users of ``db`` (every database when None), sorted by database then name."""
        with self._lock:
            users = [u for (udb, _), u in self._users.items() if db is None or udb == db]
        return sorted(users, key=lambda u: (u.db, u.name))

    def _require(self, db: str, name: str, missing: Callable[[str, str], CommandError] | None = None) -> User:
        user = self._users.get((db, name))
        if user is None:
            raise (missing or user_not_found)(name, db)
        return user

    def _derive_all(
        self, user: str, password: str, mechanisms: list[str], digest_password: bool
    ) -> dict[str, ScramCredential]:
        if not isinstance(password, str):
            raise bad_value("Invalid password: must be a string")
        if not password:
            raise bad_value("Password cannot be empty")
        if not digest_password and SCRAM_SHA_256 in mechanisms:
            raise bad_value("Use of SCRAM-SHA-256 requires undigested passwords")
        return {
            mech: derive_credential(
                mech,
                prepare_password(mech, user, password, digested=not digest_password),
                self.iterations[mech],
            )
            for mech in mechanisms
        }

    # -- privileges ----------------------------------------------------------------------------
    def live_users(self, principals: Iterable[Principal]) -> list[User]:
        """The current snapshots of the authenticated users that still exist."""
        with self._lock:
            return [u for name, db in principals if (u := self._users.get((db, name))) is not None]

    def actions_on(self, principals: Iterable[Principal], db: str) -> frozenset[Action]:
        """Every action the connection's users may do on ``db`` (from their current roles)."""
        return _actions_of(self.live_users(principals), db)

    def is_authorized(
        self, principals: Iterable[Principal], action: Action, db: str, command: str | None = None
    ) -> bool:
        """Whether :meth:`check` would let the command through."""
        try:
            self.check(principals, action, db, command)
        except CommandError:
            return False
        return True

    def check(
        self, principals: Iterable[Principal], action: Action, db: str, command: str | None = None
    ) -> None:
        """Raise code 13 Unauthorized unless the users may do ``action`` on ``db``.

        ``command`` (optional) improves the message and enables ``COMMAND_ALTERNATIVES``.
        """
        if action is Action.CUSTOM:
            raise ValueError("Action.CUSTOM is checked by the handler with a concrete action")
        if not self.enabled or action is Action.NONE:
            return
        users = self.live_users(principals)  # one consistent snapshot of the current roles
        if not users:
            raise unauthorized(
                f"command {command} requires authentication" if command else "command requires authentication"
            )
        if action is Action.AUTHENTICATED:
            return
        accepted = {action} | COMMAND_ALTERNATIVES.get(command or "", frozenset())
        if accepted & _actions_of(users, db):
            return
        what = f" {{ {command}: ... }}" if command else ""
        raise unauthorized(f"not authorized on {db} to execute command{what}")

    def roles_of(self, principals: Iterable[Principal]) -> list[RoleName]:
        """The current roles of the connection's users (for ``connectionStatus``)."""
        roles: list[RoleName] = []
        for user in self.live_users(principals):
            roles.extend(r for r in user.roles if r not in roles)
        return roles

    # -- SCRAM ---------------------------------------------------------------------------------
    def sasl_start(
        self, conn: Any, db: str, mechanism: str, payload: bytes, options: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Start a SCRAM conversation on ``conn``: ``{conversationId, done, payload}``."""
        conn.auth_state.pop(_SCRAM_STATE_KEY, None)
        if mechanism not in MECHANISMS:
            raise bad_value(f"Unsupported mechanism '{mechanism}' on authentication database '{db}'")
        skip = bool((options or {}).get("skipEmptyExchange", False))
        conversation = ScramConversation(mechanism, db, skip_empty_exchange=skip)
        try:
            reply = conversation.first(bytes(payload), self.get_user)
        except ScramFailure:
            raise authentication_failed() from None
        conn.auth_state[_SCRAM_STATE_KEY] = conversation
        return {"conversationId": CONVERSATION_ID, "done": False, "payload": reply}

    def sasl_continue(self, conn: Any, db: str, conversation_id: Any, payload: bytes) -> dict[str, Any]:
        """Run the next step of the connection's conversation; authenticates it when done."""
        conversation: ScramConversation | None = conn.auth_state.get(_SCRAM_STATE_KEY)
        if conversation is None:
            raise protocol_error("No SASL session state found")
        if conversation_id != CONVERSATION_ID:
            raise protocol_error("sasl: Mismatched conversation id")
        if db != conversation.db:
            conn.auth_state.pop(_SCRAM_STATE_KEY, None)
            raise protocol_error("Attempt to switch database target during SASL authentication.")
        try:
            reply, done = conversation.advance(bytes(payload))
        except ScramFailure:
            conn.auth_state.pop(_SCRAM_STATE_KEY, None)
            raise authentication_failed() from None
        if done:
            conn.auth_state.pop(_SCRAM_STATE_KEY, None)
            self._authenticate(conn.principals, conversation.user_name, conversation.db)
        return {"conversationId": CONVERSATION_ID, "done": done, "payload": reply}

    def _authenticate(self, principals: set[Principal], name: str, db: str) -> None:
        """Record ``name@db`` on the connection; mongod 6.0 allows one user per connection."""
        if self.get_user(db, name) is None:  # dropped during the conversation
            raise authentication_failed()
        live = {(u.name, u.db) for u in self.live_users(principals)}
        principals.intersection_update(live)
        for prev_name, prev_db in principals:
            if (prev_name, prev_db) == (name, db):
                continue
            if prev_db == db:
                raise CommandError(
                    5626701,
                    "Location5626701",
                    "Each client connection may only be authenticated once. "
                    f"Previously authenticated as: {prev_name}@{prev_db}",
                )
            raise CommandError(
                5626702,
                "Location5626702",
                "Client has attempted to authenticate on multiple databases. "
                f"Already authenticated as: {prev_name}@{prev_db}",
            )
        principals.add((name, db))

    def logout(self, conn: Any, db: str) -> None:
        """Forget the connection's users of ``db`` and any unfinished conversation."""
        conn.auth_state.pop(_SCRAM_STATE_KEY, None)
        for principal in [p for p in conn.principals if p[1] == db]:
            conn.principals.discard(principal)

    # -- hello ---------------------------------------------------------------------------------
    def hello_fields(self, conn: Any, cmd: Mapping[str, Any]) -> dict[str, Any]:
        """``saslSupportedMechs`` and ``speculativeAuthenticate`` for a hello/isMaster reply."""
        out: dict[str, Any] = {}
        requested = cmd.get("saslSupportedMechs")
        if isinstance(requested, str):
            mechs = self.supported_mechanisms(requested)
            if mechs is not None:
                out["saslSupportedMechs"] = mechs
        speculative = cmd.get("speculativeAuthenticate")
        if isinstance(speculative, Mapping):
            reply = self._speculative_start(conn, _plain(speculative))
            if reply is not None:
                out["speculativeAuthenticate"] = reply
        return out

    def supported_mechanisms(self, qualified: str) -> list[str] | None:
        """Mechanisms of ``"db.user"`` (None when the user does not exist)."""
        db, sep, name = qualified.partition(".")
        if not sep:
            raise bad_value("UserName must contain a '.' separated database.user pair")
        user = self.get_user(db, name)
        return None if user is None else user.mechanisms

    def _speculative_start(self, conn: Any, doc: Mapping[str, Any]) -> dict[str, Any] | None:
        """A ``saslStart`` inside hello; any failure is as if it had not been sent (as mongod)."""
        db, mechanism, payload = doc.get("db"), doc.get("mechanism"), doc.get("payload")
        if "saslStart" not in doc or not isinstance(db, str) or not isinstance(mechanism, str):
            return None
        if not isinstance(payload, bytes):
            return None
        try:
            return self.sasl_start(conn, db, mechanism, payload, doc.get("options"))
        except CommandError:
            return None


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _actions_of(users: Iterable[User], db: str) -> frozenset[Action]:
    actions: set[Action] = set()
    for user in users:
        for role, role_db in user.roles:
            actions |= role_actions(role, role_db, db)
    return frozenset(actions)


def _check_user_name(name: str, db: str) -> None:
    if not isinstance(name, str) or not name:
        raise bad_value("User name must be a non-empty string")
    if db == "local":
        raise bad_value("Cannot create users in the local database")


def _subset_credentials(user: User, wanted: list[str]) -> dict[str, ScramCredential]:
    missing = [m for m in wanted if m not in user.credentials]
    if missing:
        raise bad_value("mechanisms field must be a subset of previously set mechanisms")
    return {m: user.credentials[m] for m in wanted}


def _could_not_find(name: str, db: str) -> CommandError:
    return CommandError(USER_NOT_FOUND, "UserNotFound", f'Could not find user "{name}" for db "{db}"')


def _copy(doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if doc is None else dict(doc)


def _plain(doc: Mapping[str, Any]) -> dict[str, Any]:
    plain = to_plain(doc)
    return plain if isinstance(plain, dict) else dict(plain)
