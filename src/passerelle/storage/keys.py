"""People and their virtual keys.

A key is shown once, when it is created; only its SHA-256 is stored. Keys carry 256 bits of
randomness, so an unsalted hash cannot be reversed by brute force and lets the hot path find a
key with one indexed lookup. Every change to users or keys bumps the credentials epoch in the
same transaction; :mod:`passerelle.storage.keycache` watches that counter so that gateways can
keep resolved keys in memory and still see a revocation made by any process.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Connection, select

from passerelle.core.context import KeyScope
from passerelle.errors import PasserelleError
from passerelle.storage import epochs
from passerelle.storage.db import Database, now_us
from passerelle.storage.epochs import Epoch
from passerelle.storage.tables import api_keys, users

KEY_PREFIX = "psk-"
_PREFIX_CHARS = 12


class KeyStatus(StrEnum):
    VALID = "valid"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REVOKED = "revoked"
    USER_DISABLED = "user_disabled"


class NotFoundError(PasserelleError):
    """A user or key named by an operator does not exist."""


class ConflictError(PasserelleError):
    """The operation would duplicate something that must be unique."""


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    name: str
    team: str | None
    profile: str | None
    created_at: int
    disabled_at: int | None


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: str
    prefix: str
    user_id: str
    email: str
    project: str | None
    scope: KeyScope
    description: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None


@dataclass(frozen=True, slots=True)
class KeyLookup:
    status: KeyStatus
    key: KeyInfo | None = None
    user: User | None = None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def looks_like_key(value: str) -> bool:
    return value.startswith(KEY_PREFIX) and 20 <= len(value) <= 128


def bump_epoch(conn: Connection) -> None:
    """Tell every key cache that users or keys changed; call inside the changing transaction."""
    epochs.bump_epoch(conn, Epoch.CREDENTIALS)


def read_epoch(conn: Connection) -> int:
    return epochs.read_epoch(conn, Epoch.CREDENTIALS)


def key_status(key: KeyInfo, user: User, now: int) -> KeyStatus:
    """Whether a stored key may be used at ``now`` (microseconds)."""
    if key.revoked_at is not None:
        return KeyStatus.REVOKED
    if key.expires_at is not None and key.expires_at <= now:
        return KeyStatus.EXPIRED
    if user.disabled_at is not None:
        return KeyStatus.USER_DISABLED
    return KeyStatus.VALID


def _user(row: object) -> User:
    return User(
        id=row.id,  # type: ignore[attr-defined]
        email=row.email,  # type: ignore[attr-defined]
        name=row.name,  # type: ignore[attr-defined]
        team=row.team,  # type: ignore[attr-defined]
        profile=row.profile,  # type: ignore[attr-defined]
        created_at=row.created_at,  # type: ignore[attr-defined]
        disabled_at=row.disabled_at,  # type: ignore[attr-defined]
    )


class KeyStore:
    """Users and keys in the database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # Called after each committed change, so that this process's caches drop at once.
        self.on_change: list[Callable[[], None]] = []

    def _changed(self) -> None:
        for listener in self.on_change:
            listener()

    # -- users -----------------------------------------------------------------------------

    def add_user(
        self, email: str, *, name: str = "", team: str | None = None, profile: str | None = None
    ) -> User:
        email = email.strip().lower()
        with self.db.begin() as conn:
            if conn.execute(select(users.c.id).where(users.c.email == email)).first():
                raise ConflictError(f"a user with email {email} already exists")
            user = User(
                id=str(uuid.uuid4()),
                email=email,
                name=name,
                team=team,
                profile=profile,
                created_at=now_us(),
                disabled_at=None,
            )
            conn.execute(
                users.insert().values(
                    id=user.id,
                    email=user.email,
                    name=user.name,
                    team=user.team,
                    profile=user.profile,
                    created_at=user.created_at,
                )
            )
            bump_epoch(conn)
        self._changed()
        return user

    def get_user(self, email_or_id: str) -> User:
        value = email_or_id.strip()
        with self.db.read() as conn:
            row = conn.execute(
                select(users).where((users.c.email == value.lower()) | (users.c.id == value))
            ).first()
        if row is None:
            raise NotFoundError(f"no user {value!r}; add one with 'passerelle users add EMAIL'")
        return _user(row)

    def list_users(self) -> list[User]:
        with self.db.read() as conn:
            rows = conn.execute(select(users).order_by(users.c.email)).all()
        return [_user(row) for row in rows]

    # -- keys ------------------------------------------------------------------------------

    def create_key(
        self,
        user: User,
        *,
        project: str | None,
        scope: KeyScope = KeyScope.INFERENCE,
        description: str = "",
        expires_at: int | None = None,
    ) -> tuple[str, KeyInfo]:
        """Create a key; returns the plaintext (to show once) and its stored description."""
        plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
        info = KeyInfo(
            id=str(uuid.uuid4()),
            prefix=plaintext[:_PREFIX_CHARS],
            user_id=user.id,
            email=user.email,
            project=project,
            scope=scope,
            description=description,
            created_at=now_us(),
            expires_at=expires_at,
            revoked_at=None,
        )
        with self.db.begin() as conn:
            conn.execute(
                api_keys.insert().values(
                    id=info.id,
                    prefix=info.prefix,
                    key_hash=hash_key(plaintext),
                    user_id=info.user_id,
                    project=info.project,
                    scope=info.scope.value,
                    description=info.description,
                    created_at=info.created_at,
                    expires_at=info.expires_at,
                )
            )
            bump_epoch(conn)
        self._changed()
        return plaintext, info

    def list_keys(
        self, *, email: str | None = None, include_revoked: bool = False
    ) -> list[KeyInfo]:
        query = select(api_keys, users.c.email).join(users, users.c.id == api_keys.c.user_id)
        if email:
            query = query.where(users.c.email == email.strip().lower())
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(api_keys.c.created_at)).all()
        return [
            KeyInfo(
                id=row.id,
                prefix=row.prefix,
                user_id=row.user_id,
                email=row.email,
                project=row.project,
                scope=KeyScope(row.scope),
                description=row.description,
                created_at=row.created_at,
                expires_at=row.expires_at,
                revoked_at=row.revoked_at,
            )
            for row in rows
        ]

    def revoke_key(self, key_id_or_prefix: str) -> KeyInfo:
        """Revoke by id or by the prefix shown in listings (which must then be unambiguous)."""
        value = key_id_or_prefix.strip()
        with self.db.begin() as conn:
            rows = conn.execute(
                select(api_keys.c.id).where((api_keys.c.id == value) | (api_keys.c.prefix == value))
            ).all()
            if not rows:
                raise NotFoundError(f"no key with id or prefix {value!r}")
            if len(rows) > 1:
                raise ConflictError(f"prefix {value!r} matches several keys; use the key id")
            key_id = rows[0].id
            conn.execute(
                api_keys.update()
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now_us())
            )
            bump_epoch(conn)
        self._changed()
        return next(k for k in self.list_keys(include_revoked=True) if k.id == key_id)

    def resolve(self, plaintext: str) -> KeyLookup:
        """Find the key a request presents, straight from the database."""
        if not looks_like_key(plaintext):
            return KeyLookup(KeyStatus.UNKNOWN)
        found = self.find_by_hash(hash_key(plaintext))
        if found is None:
            return KeyLookup(KeyStatus.UNKNOWN)
        key, user = found
        return KeyLookup(key_status(key, user, now_us()), key, user)

    def find_by_hash(self, digest: str) -> tuple[KeyInfo, User] | None:
        """The key with this SHA-256 and its user; one indexed read."""
        query = (
            select(
                api_keys,
                users.c.email,
                users.c.name,
                users.c.team,
                users.c.profile,
                users.c.created_at.label("user_created_at"),
                users.c.disabled_at,
            )
            .join(users, users.c.id == api_keys.c.user_id)
            .where(api_keys.c.key_hash == digest)
        )
        with self.db.read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        key = KeyInfo(
            id=row.id,
            prefix=row.prefix,
            user_id=row.user_id,
            email=row.email,
            project=row.project,
            scope=KeyScope(row.scope),
            description=row.description,
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
        )
        user = User(
            id=row.user_id,
            email=row.email,
            name=row.name,
            team=row.team,
            profile=row.profile,
            created_at=row.user_created_at,
            disabled_at=row.disabled_at,
        )
        return key, user

    def epoch(self) -> int:
        with self.db.read() as conn:
            return read_epoch(conn)
