"""People, classes and sessions: the rules, with no web framework in sight.

Everything here writes through :mod:`.records`, so every change is an
operation that sync can carry. Secrets are hashed with Argon2id
(argon2-cffi): staff passwords with OWASP's minimum profile (19 MiB, 2
passes), learners' 4-digit PINs and picture passwords with a lighter one
(8 MiB), because thirty children signing in at once on a Pi must not need
thirty times 19 MiB, and a 4-digit secret is protected by the sign-in rate
limit, not by the hash's cost.

Who is signed in is kept here too, box-local (never an operation): the
cookie carries a random token, the ``signins`` table its SHA-256, so ending a
session on the server ends every copy of the cookie.

Records that two boxes could create independently for the same thing (a
membership, an attendance mark) get a UUID derived from what they join, so
the two converge on one record instead of duplicating it.

Messages are marked with ``_l`` (lazy gettext): a kiosk form shows them in the
page's language, the command line in English (see ``server/i18n.py``). The
stored values (roles, avatars, profile answers...) are stable English ids;
their labels are the kiosk's (``kiosk/labels.py``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import time
import unicodedata
import uuid as uuidlib
from datetime import UTC, datetime

import argon2
import sqlite_utils
from passerelle.server import records
from passerelle.server.db import new_uuid
from passerelle.server.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PasserelleError,
)
from passerelle.server.i18n import lazy_text as _l
from passerelle.server.people import sites
from passerelle.server.settings import LANGUAGES

ROLES = ("learner", "facilitator", "coordinator")
STAFF = ("facilitator", "coordinator")
SIGNIN_MODES = ("password", "pin", "picture", "none")
# Optional profile fields an organisation may switch on, each with the purpose it states.
PROFILE_FIELDS = ("age_band", "gender", "languages_spoken", "newcomer", "employment")
AGE_BANDS = ("under-18", "18-25", "26-35", "36-45", "46-55", "56-65", "66-75", "over-75")
GENDERS = ("woman", "man", "non-binary", "other")
EMPLOYMENT = ("employed", "job-seeker", "student", "retired", "other")
# The answers each closed profile question offers (languages_spoken is free text).
PROFILE_CHOICES = {"age_band": AGE_BANDS, "gender": GENDERS, "employment": EMPLOYMENT,
                   "newcomer": ("yes", "no")}
# Picture passwords are three of these, in order.
PICTURES = ("sun", "moon", "tree", "cat", "fish", "house", "car", "flower", "apple", "star",
            "boat", "bird")
AVATARS = ("fox", "owl", "bear", "turtle", "rabbit", "lion", "whale", "bee", "frog", "panda",
           "koala", "penguin")

STAFF_HASHER = argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
LEARNER_HASHER = argon2.PasswordHasher(time_cost=2, memory_cost=8192, parallelism=1)

# Sign-in rate limit: this many failures within the window lock the account for the rest of it.
MAX_FAILURES = 5
WINDOW_SECONDS = 300
MAX_FAILURES_PER_CLIENT = 30

_NAMESPACE = uuidlib.UUID("6f1c2d4e-8a57-4c1b-9a0e-5b3f7d2c9e81")


class SigninFailed(PasserelleError):
    code = "signin_failed"
    status = 401


class LockedOut(PasserelleError):
    code = "locked_out"
    status = 429

    def __init__(self, retry_after: int):
        super().__init__(_l("too many failed sign-ins; try again in %(seconds)s seconds",
                            seconds=retry_after),
                         details={"retry_after": retry_after})
        self.retry_after = retry_after


def joined_uuid(*parts: str) -> str:
    return str(uuidlib.uuid5(_NAMESPACE, ":".join(parts)))


def fold(text: str) -> str:
    """Lower case without accents: how usernames and names are compared."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).strip()


def holds_words(words: str, *texts: str) -> bool:
    """Whether ``texts`` hold every word of ``words``, capitals and accents aside (the short
    lists staff narrow by typing a few letters: learners to add, questions for a quiz)."""
    haystack = fold(" ".join(texts))
    return all(word in haystack for word in fold(words).split())


# --- Organisation and first start ---------------------------------------------------

def organisation(db: sqlite_utils.Database) -> dict | None:
    # The oldest, should two boxes ever have been set up apart and then synced.
    row = db.execute("SELECT uuid FROM organisations WHERE deleted = 0 ORDER BY version LIMIT 1"
                     ).fetchone()
    return records.load(db, "organisation", row[0]) if row else None


def needs_setup(db: sqlite_utils.Database) -> bool:
    """True until an organisation and a coordinator exist: then no default account ever has."""
    if organisation(db) is None:
        return True
    return db.execute("SELECT 1 FROM users WHERE role = 'coordinator' AND deleted = 0 LIMIT 1"
                      ).fetchone() is None


def setup(db: sqlite_utils.Database, *, org_name: str, languages: list[str], signin_mode: str,
          profile_fields: dict[str, str] | None, display_name: str, username: str,
          password: str, password_again: str | None = None) -> str:
    """Create the organisation and its first coordinator; refused once done.

    Every problem of the form is reported at once (the organisation's and the coordinator's).
    """
    if not needs_setup(db):
        raise Conflict(_l("this box is already set up"))
    errors = check_organisation(org_name, languages, signin_mode, profile_fields)
    try:
        validate_user(db, role="coordinator", display_name=display_name, username=username,
                      password=password, hash_secrets=False)
    except InvalidInput as exc:
        errors.update(exc.details or {})
    if password_again is not None and password_again != password:
        errors["password_again"] = _l("The two passwords are not the same.")
    if errors:
        raise InvalidInput(_l("the organisation is not valid"), details=errors)
    # Checked (and the password hashed) before taking the write lock: hashing is slow.
    coordinator = validate_user(db, role="coordinator", display_name=display_name,
                                username=username, password=password)
    with records.write_tx(db):
        # Asked again under the write lock: of parallel first starts, only one sets the box up.
        if not needs_setup(db):
            raise Conflict(_l("this box is already set up"))
        existing = organisation(db)
        records.put(db, "organisation", existing["uuid"] if existing else new_uuid(), {
            "name": org_name.strip(), "languages": languages, "signin_mode": signin_mode,
            "profile_fields": profile_fields or {},
        })
        return _put_new_user(db, coordinator)


def update_organisation(db: sqlite_utils.Database, **changes) -> dict:
    org = organisation(db)
    if org is None:
        raise NotFound(_l("the box is not set up yet"))
    records.put_changes(db, "organisation", org, changes)
    return organisation(db)


def check_organisation(name: str, languages: list[str], signin_mode: str,
                       profile_fields: dict[str, str] | None) -> dict:
    """The organisation's own fields, as setup and the settings page check them."""
    errors = {}
    if not (name or "").strip() or len(name.strip()) > 120:
        errors["org_name"] = _l("the organisation needs a name")
    if not languages or any(lang not in LANGUAGES for lang in languages):
        errors["languages"] = _l("choose at least one of %(choices)s", choices="fr, nl, en, ar")
    if signin_mode not in SIGNIN_MODES:
        errors["signin_mode"] = _l("one of %(choices)s", choices=", ".join(SIGNIN_MODES))
    for field in profile_fields or {}:
        if field not in PROFILE_FIELDS:
            errors["profile_fields"] = _l("unknown profile field %(field)s", field=repr(field))
    return errors


def update_settings(db: sqlite_utils.Database, *, name: str, languages: list[str],
                    signin_mode: str, profile_fields: dict[str, str],
                    learners_edit_profile: bool, learners_change_secret: bool) -> dict:
    """The organisation's settings after setup, all checked at once (InvalidInput)."""
    errors = check_organisation(name, languages, signin_mode, profile_fields)
    if errors:
        raise InvalidInput(_l("the organisation is not valid"), details=errors)
    return update_organisation(
        db, name=name.strip(), languages=list(dict.fromkeys(languages)), signin_mode=signin_mode,
        profile_fields={k: (v or "").strip()[:200] for k, v in profile_fields.items()},
        learners_edit_profile=1 if learners_edit_profile else None,
        learners_change_secret=1 if learners_change_secret else None)


SECRET_OF_MODE = {"pin": "pin_hash", "picture": "picture_hash", "password": "password_hash"}


def signin_mode_change(db: sqlite_utils.Database, new_mode: str) -> dict:
    """What a new learner sign-in mode means for the learners there are, before it is chosen:
    how many already have the secret it asks for, and how many have none and could not sign in
    until given one. Nothing is deleted: the other secrets stay and work again if the mode
    comes back."""
    current = (organisation(db) or {}).get("signin_mode", "pin")
    learners = db.execute("SELECT count(*) FROM users WHERE role = 'learner' AND deleted = 0"
                          ).fetchone()[0]
    column = SECRET_OF_MODE.get(new_mode)
    ready = learners if column is None else db.execute(
        f"SELECT count(*) FROM users WHERE role = 'learner' AND deleted = 0 AND {column} IS NOT NULL"
    ).fetchone()[0]
    return {"from": current, "to": new_mode, "learners": learners, "ready": ready,
            "without": learners - ready}


# --- Users ---------------------------------------------------------------------------

def check_password(password: str | None) -> str | None:
    """Every problem of a password at once, so that one correction is enough."""
    problems = []
    if password is None or len(password) < 10:
        problems.append(_l("at least 10 characters (a sentence of a few words is easy to remember)"))
    if len(set(password or "")) < 4:
        problems.append(_l("use more different characters"))
    return _JoinedProblems(problems) if problems else None


class _JoinedProblems:
    """Several lazy messages shown as one, in the language of the page that shows them."""

    def __init__(self, parts: list):
        self.parts = parts

    def __str__(self) -> str:
        return "; ".join(str(p) for p in self.parts)

    def __html__(self) -> str:
        from markupsafe import escape

        return str(escape(str(self)))


def check_pin(pin: str | None) -> str | None:
    if pin is None or not re.fullmatch(r"[0-9]{4}", pin):
        return _l("exactly 4 digits")
    return None


def check_picture(picture: list[str] | None) -> str | None:
    if not picture or len(picture) != 3 or any(p not in PICTURES for p in picture):
        return _l("three pictures among %(choices)s", choices=", ".join(PICTURES))
    return None


def create_user(db: sqlite_utils.Database, *, role: str, display_name: str,
                username: str | None = None, password: str | None = None,
                pin: str | None = None, picture: list[str] | None = None,
                avatar: str | None = None, language: str | None = None,
                profile: dict | None = None, consent: dict | None = None) -> str:
    fields = validate_user(db, role=role, display_name=display_name, username=username,
                           password=password, pin=pin, picture=picture, avatar=avatar,
                           language=language, profile=profile, consent=consent)
    return _put_new_user(db, fields)


def _put_new_user(db, fields: dict) -> str:
    user_uuid = new_uuid()
    records.put(db, "user", user_uuid, {**fields, "created_at": records.now_iso(),
                                        "site": sites.home_site_for(db, fields.get("role"))})
    return user_uuid


def validate_user(db, *, role, display_name, username=None, password=None, pin=None,
                  picture=None, avatar=None, language=None, profile=None, consent=None,
                  existing: dict | None = None, hash_secrets: bool = True) -> dict:
    """Check a user's fields; returns the record's fields (secrets hashed) or raises InvalidInput.

    ``hash_secrets=False`` checks without hashing, for previews (hashing is slow on purpose).
    """
    hasher_staff = STAFF_HASHER if hash_secrets else _NoHash
    hasher_learner = LEARNER_HASHER if hash_secrets else _NoHash
    errors: dict[str, str] = {}
    if role not in ROLES:
        errors["role"] = _l("one of %(choices)s", choices=", ".join(ROLES))
    display_name = (display_name or "").strip()
    if not display_name or len(display_name) > 80:
        errors["display_name"] = _l("a name of 1 to 80 characters")
    username = (username or "").strip() or None
    if role in STAFF and not username:
        errors["username"] = _l("facilitators and coordinators need a username")
    if username:
        if not re.fullmatch(r"[\w.@-]{2,40}", username):
            errors["username"] = _l("2 to 40 letters, digits, dots, dashes or underscores")
        elif username_taken(db, username, except_uuid=existing and existing["uuid"]):
            errors["username"] = _l("this username is already taken")
    if avatar is not None and avatar not in AVATARS:
        errors["avatar"] = _l("one of %(choices)s", choices=", ".join(AVATARS))
    if language is not None and language not in LANGUAGES:
        errors["language"] = _l("one of %(choices)s", choices="fr, nl, en, ar")
    hashes = {k: (existing or {}).get(k) for k in ("password_hash", "pin_hash", "picture_hash")}
    if role in STAFF or password is not None:
        if password is not None or not hashes["password_hash"]:
            problem = check_password(password)
            if problem:
                errors["password"] = problem
            else:
                hashes["password_hash"] = hasher_staff.hash(password)
    if pin is not None:
        problem = check_pin(pin)
        if problem:
            errors["pin"] = problem
        else:
            hashes["pin_hash"] = hasher_learner.hash(pin)
    if picture is not None:
        problem = check_picture(picture)
        if problem:
            errors["picture"] = problem
        else:
            hashes["picture_hash"] = hasher_learner.hash("-".join(picture))
    profile = clean_profile(db, profile or {}, errors, kept=(existing or {}).get("profile") or {})
    if errors:
        raise InvalidInput(_l("the account is not valid"), details=errors)
    return {
        "role": role, "display_name": display_name, "username": username, **hashes,
        "avatar": avatar, "language": language, "profile": profile,
        "consent": consent if consent is not None else (existing or {}).get("consent"),
        "created_at": (existing or {}).get("created_at"),
    }


class _NoHash:
    @staticmethod
    def hash(_secret: str) -> str:
        return "(not hashed: preview)"


def clean_profile(db, profile: dict, errors: dict, kept: dict | None = None) -> dict:
    """Keep only the fields the organisation switched on; every one may stay blank.

    An answer given before its question was switched off (``kept``, the person's stored
    answers) stays as it was: editing the person does not fail on it, nor silently drop it.
    """
    org = organisation(db)
    enabled = (org or {}).get("profile_fields") or {}
    allowed = PROFILE_CHOICES
    cleaned = {}
    for field, value in profile.items():
        if value in (None, "", []):
            continue
        if field not in enabled and (kept or {}).get(field) == value:
            cleaned[field] = value
        elif field not in enabled:
            errors[f"profile.{field}"] = _l("this organisation does not collect this field")
        elif field in allowed and value not in allowed[field]:
            errors[f"profile.{field}"] = _l("one of %(choices)s", choices=", ".join(allowed[field]))
        elif field == "languages_spoken" and not (
                isinstance(value, list) and all(isinstance(v, str) and len(v) <= 40 for v in value)):
            errors[f"profile.{field}"] = _l("a list of languages")
        else:
            cleaned[field] = value
    for field, value in (kept or {}).items():
        # Not asked any more, so not on the form: kept rather than lost.
        if field not in enabled and field not in profile:
            cleaned[field] = value
    return cleaned


def username_taken(db, username: str, except_uuid: str | None = None) -> bool:
    rows = db.execute("SELECT uuid, username FROM users WHERE deleted = 0 AND username IS NOT NULL"
                      ).fetchall()
    wanted = fold(username)
    return any(fold(name) == wanted and uid != except_uuid for uid, name in rows)


def get_user(db, user_uuid: str) -> dict:
    return records.require(db, "user", user_uuid, _l("no such person"))


def update_user(db, user_uuid: str, **changes) -> dict:
    user = get_user(db, user_uuid)
    current = {k: user.get(k) for k in ("role", "display_name", "username", "avatar", "language",
                                          "profile", "consent")}
    current.update(changes)
    fields = validate_user(db, existing=user, **current)
    fields["site"] = user.get("site") if fields.get("role") == "learner" else None  # moves: sites.move
    with records.write_tx(db):
        records.put(db, "user", user_uuid, fields)
        if credential_stamp(fields) != credential_stamp(user):
            # A new password, PIN or pictures (a reset) or a new role: signed out everywhere.
            end_signins(db, user_uuid)
    return get_user(db, user_uuid)


def delete_user(db, user_uuid: str) -> None:
    get_user(db, user_uuid)
    if db.execute("SELECT count(*) FROM users WHERE role = 'coordinator' AND deleted = 0"
                  " AND uuid != ?", [user_uuid]).fetchone()[0] == 0 and \
            get_user(db, user_uuid)["role"] == "coordinator":
        raise Conflict(_l("this is the last coordinator; name another one first"))
    with records.write_tx(db):
        records.delete(db, "user", user_uuid)
        end_signins(db, user_uuid)


def removed_users(db, limit: int | None = None) -> list[dict]:
    """People removed from this box, newest first, each as they last were (the bin).

    A removal is a tombstone in the operation log; the person's last state is still there, so
    nothing is lost: progress, attendance and memberships stay attached to the same uuid.
    """
    rows = db.execute("SELECT uuid, version FROM users WHERE deleted = 1 ORDER BY version DESC"
                      " LIMIT ?", [-1 if limit is None else limit]).fetchall()
    people = []
    for user_uuid, version in rows:
        last = _last_state(db, user_uuid)
        if last is not None:
            removed_ms = records.parse_version(version)[0]
            people.append({**last, "uuid": user_uuid,
                           "removed_at": datetime.fromtimestamp(removed_ms / 1000, UTC)})
    return people


def _last_state(db, user_uuid: str) -> dict | None:
    puts = [op for op in records.history(db, "user", user_uuid) if op.kind == "put"]
    return dict(puts[-1].payload) if puts else None


def restore_user(db, user_uuid: str) -> dict:
    """Bring a removed person back as they were: a new put of their last state."""
    if records.load(db, "user", user_uuid) is not None:
        return get_user(db, user_uuid)  # already back (two clicks, or another box)
    last = _last_state(db, user_uuid)
    if last is None:
        raise NotFound(_l("no such person"))
    if last.get("username") and username_taken(db, last["username"], except_uuid=user_uuid):
        raise Conflict(_l("someone else now has the username %(name)s; change theirs first",
                          name=last["username"]))
    records.put(db, "user", user_uuid, last)
    return get_user(db, user_uuid)


def list_users(db, role: str | None = None) -> list[dict]:
    if role:
        return records.query(db, "user", "t.role = ?", [role], "t.display_name COLLATE NOCASE")
    return records.query(db, "user", order="t.display_name COLLATE NOCASE")


# --- Signing in -------------------------------------------------------------------------
#
# Each attempt is counted *before* its secret is checked, in the same write transaction
# that reads the count: parallel attempts queue for the write lock, so however many arrive
# at once, no more than the limit of secrets is ever checked per window. A success takes
# its own attempt back (and clears the account's earlier failures).

def _failures(db, key: str, now: float) -> list[float]:
    return [r[0] for r in db.execute(
        "SELECT at FROM signin_failures WHERE key = ? AND at > ? ORDER BY at",
        [key, now - WINDOW_SECONDS]).fetchall()]


def _claim_attempt(db, keys: dict[str, int], now: float) -> list[tuple[str, float]]:
    """Count one attempt against each key, or raise LockedOut when one is at its limit."""
    with records.write_tx(db):
        db.execute("DELETE FROM signin_failures WHERE at <= ?", [now - WINDOW_SECONDS])
        for key, limit in keys.items():
            recent = _failures(db, key, now)
            if len(recent) >= limit:
                raise LockedOut(max(1, int(recent[-limit] + WINDOW_SECONDS - now) + 1))
        for key in keys:
            db.execute("INSERT INTO signin_failures (key, at) VALUES (?, ?)", [key, now])
        # (key, time) names the claim on both engines (PostgreSQL has no rowid).
        return [(key, now) for key in keys]


def _attempt_succeeded(db, account_key: str, claimed: list[tuple[str, float]]) -> None:
    with records.write_tx(db):
        db.execute("DELETE FROM signin_failures WHERE key = ?", [account_key])
        for key, at in claimed:
            db.execute("DELETE FROM signin_failures WHERE key = ? AND at = ?", [key, at])


@functools.cache
def _stand_in_hash(hasher: argon2.PasswordHasher) -> str:
    return hasher.hash("not a real secret, used to spend equal time")


def _verify(hasher: argon2.PasswordHasher, stored: str | None, secret: str) -> bool:
    """Check a secret; with no stored hash (no such person), spend the same time on a stand-in,
    so that the answer's delay does not tell which usernames exist."""
    try:
        return hasher.verify(stored or _stand_in_hash(hasher), secret) and bool(stored)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


def authenticate_staff(db, username: str, password: str, client: str,
                       now: float | None = None) -> dict:
    """A facilitator or coordinator, by username and password; rate limited per name and client.

    The lock is keyed by the name as typed (folded), whether or not it exists: an unknown name
    is locked, answered and timed exactly like a real one, so no answer reveals a username.
    """
    now = time.time() if now is None else now
    wanted = fold(username or "")
    account_key = f"staff:{wanted[:80]}"  # usernames are at most 40 characters
    claimed = _claim_attempt(db, {account_key: MAX_FAILURES,
                                  f"client:{client}": MAX_FAILURES_PER_CLIENT}, now)
    staff = records.query(db, "user", "t.role IN ('facilitator', 'coordinator')")
    user = next((u for u in staff if u["username"] and fold(u["username"]) == wanted), None)
    if not _verify(STAFF_HASHER, user and user["password_hash"], password or ""):
        raise SigninFailed(_l("wrong username or password"))
    _attempt_succeeded(db, account_key, claimed)
    return user


def authenticate_learner(db, user_uuid: str, secret: str | list[str] | None, client: str,
                         now: float | None = None) -> dict:
    """A learner, by the organisation's sign-in mode: password, PIN, pictures or none."""
    now = time.time() if now is None else now
    user = records.load(db, "user", user_uuid)
    if user is None or user["role"] != "learner":
        raise SigninFailed(_l("no such learner"))
    mode = (organisation(db) or {}).get("signin_mode", "pin")
    if mode == "none":
        return user
    account_key = f"user:{user_uuid}"
    claimed = _claim_attempt(db, {account_key: MAX_FAILURES,
                                  f"client:{client}": MAX_FAILURES_PER_CLIENT}, now)
    if mode == "password":
        ok = _verify(STAFF_HASHER, user["password_hash"], secret or "")
    elif mode == "pin":
        ok = _verify(LEARNER_HASHER, user["pin_hash"], secret or "")
    else:
        given = "-".join(secret) if isinstance(secret, list) else (secret or "")
        ok = _verify(LEARNER_HASHER, user["picture_hash"], given)
    if not ok:
        raise SigninFailed(_l("that is not the right code"))
    _attempt_succeeded(db, account_key, claimed)
    return user


# --- Signed-in sessions (local to this box, never synced) ----------------------------------
#
# The cookie is signed but readable and copyable (the box serves plain HTTP on shared Wi-Fi),
# so it only carries a random token; the session is the row of that token's SHA-256 here.
# Checking one costs a primary-key read per request and writes nothing.

def _token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def credential_stamp(user: dict) -> str:
    """A fingerprint of what a session rests on: the role and the secrets (not name or language)."""
    parts = (user.get("role"), user.get("password_hash"), user.get("pin_hash"),
             user.get("picture_hash"))
    return hashlib.sha256("\0".join(p or "" for p in parts).encode()).hexdigest()[:32]


def start_signin(db, user: dict, lifetime_seconds: float, replaces: str | None = None,
                 now: float | None = None) -> str:
    """A new session for this person; returns the token for the cookie.

    Always a new token (a session id planted before sign-in is never promoted); ``replaces``
    ends the session this browser held before. Expired sessions are purged here.
    """
    now = time.time() if now is None else now
    token = secrets.token_urlsafe(32)
    with records.write_tx(db):
        db.execute("DELETE FROM signins WHERE started_at < ?", [now - lifetime_seconds])
        if replaces:
            db.execute("DELETE FROM signins WHERE id = ?", [_token_id(replaces)])
        db.execute("INSERT INTO signins (id, user_uuid, stamp, started_at) VALUES (?, ?, ?, ?)",
                   [_token_id(token), user["uuid"], credential_stamp(user), now])
    return token


def signed_in_user(db, token: str, lifetime_seconds: float, now: float | None = None
                   ) -> dict | None:
    """The person whose session this token is, or None: never started, ended, expired, or
    the person was removed or their role or a secret changed since (here or by sync)."""
    user, stale = _signin_of(db, token, lifetime_seconds, now)
    if stale:
        end_signin(db, token)  # once: the row is gone for the next request with this cookie
    return user


def session_holder(db, token: str, lifetime_seconds: float, now: float | None = None
                   ) -> dict | None:
    """:func:`signed_in_user`, reading only: a stale session is left for the next request
    to end. For decisions taken where no write may wait for the lock (Waitress' event loop)."""
    return _signin_of(db, token, lifetime_seconds, now)[0]


def _signin_of(db, token: str, lifetime_seconds: float, now: float | None
               ) -> tuple[dict | None, bool]:
    """(The person, or None; whether the session row is stale and should be ended.)"""
    now = time.time() if now is None else now
    row = db.execute("SELECT user_uuid, stamp, started_at FROM signins WHERE id = ?",
                     [_token_id(token)]).fetchone()
    if row is None:
        return None, False
    user_uuid, stamp, started_at = row
    user = None if now - started_at > lifetime_seconds else records.load(db, "user", user_uuid)
    if user is None or not hmac.compare_digest(credential_stamp(user), stamp):
        return None, True
    return user, False


def end_signin(db, token: str) -> None:
    """Sign out: the token, and every copy of the cookie holding it, no longer works."""
    with records.write_tx(db):
        db.execute("DELETE FROM signins WHERE id = ?", [_token_id(token)])


def signed_in_people(db, lifetime_seconds: float, now: float | None = None) -> set[str]:
    """Who holds a session that has not expired (learners' idle sessions included)."""
    now = time.time() if now is None else now
    rows = db.execute("SELECT DISTINCT user_uuid FROM signins WHERE started_at >= ?",
                      [now - lifetime_seconds])
    return {row[0] for row in rows}


def end_signins(db, user_uuid: str) -> int:
    """Sign a person out everywhere; returns how many sessions ended."""
    with records.write_tx(db):
        return db.execute("DELETE FROM signins WHERE user_uuid = ?", [user_uuid]).rowcount


# --- Classes, memberships, sessions, attendance -------------------------------------------

def create_class(db, name: str, description: str = "", facilitator_uuid: str | None = None) -> str:
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise InvalidInput(_l("the class is not valid"),
                           details={"name": _l("a name of 1 to 80 characters")})
    class_uuid = new_uuid()
    with records.write_tx(db):
        records.put(db, "class", class_uuid, {"name": name, "description": description.strip(),
                                              "created_at": records.now_iso(),
                                              "site": sites.this_site(db)})
        if facilitator_uuid:
            add_member(db, class_uuid, facilitator_uuid)
    return class_uuid


def get_class(db, class_uuid: str) -> dict:
    return records.require(db, "class", class_uuid, _l("no such class"))


def add_member(db, class_uuid: str, user_uuid: str) -> str:
    """Add a person to a class, no questions asked: for the box's own steps (setup, a class's
    creator, a coordinator's roster). A person's request goes through :func:`enrol`."""
    get_class(db, class_uuid)
    user = get_user(db, user_uuid)
    role = "learner" if user["role"] == "learner" else "facilitator"
    membership = joined_uuid("membership", class_uuid, user_uuid)
    records.put(db, "membership", membership,
                {"class_uuid": class_uuid, "user_uuid": user_uuid, "role": role})
    return membership


def _enrollable(db, actor: dict, class_uuid: str, where: str, params=()) -> list[dict]:
    """The people ``actor`` may put into a class (see :func:`may_enrol`)."""
    if not can_manage_class(db, actor, class_uuid):
        return []
    sql, args = where, list(params)
    if actor["role"] != "coordinator":
        # A learner none of whose classes is led by someone else: in no class, or only in the
        # actor's own.
        sql += (" AND t.role = 'learner' AND NOT EXISTS (SELECT 1 FROM memberships m"
                " WHERE m.user_uuid = t.uuid AND m.deleted = 0 AND m.class_uuid NOT IN"
                " (SELECT f.class_uuid FROM memberships f WHERE f.user_uuid = ? AND f.deleted = 0"
                " AND f.role = 'facilitator'))")
        args.append(actor["uuid"])
    return records.query(db, "user", sql, args, "t.display_name COLLATE NOCASE")


def may_enrol(db, actor: dict, class_uuid: str, person: dict) -> bool:
    """Whether ``actor`` may put ``person`` into a class, and so see their record and history.

    A coordinator may put anyone into any class. A facilitator, into a class they lead: only a
    learner who is in no class yet (a newcomer), or one in other classes they lead too (their
    own learner, whose record they already see). A learner of another facilitator's class is
    not theirs to take: a coordinator adds them.
    """
    return bool(_enrollable(db, actor, class_uuid, "t.uuid = ?", [person["uuid"]]))


def enrollable_learners(db, actor: dict, class_uuid: str) -> list[dict]:
    """The learners ``actor`` may add to a class (not those already in it), by name."""
    return _enrollable(db, actor, class_uuid,
                       "t.role = 'learner' AND NOT EXISTS (SELECT 1 FROM memberships here"
                       " WHERE here.user_uuid = t.uuid AND here.class_uuid = ? AND here.deleted = 0)",
                       [class_uuid])


def enrol(db, actor: dict, class_uuid: str, user_uuid: str) -> str:
    """Add a person to a class on behalf of ``actor``: :func:`may_enrol` or Forbidden."""
    get_class(db, class_uuid)
    person = get_user(db, user_uuid)
    with records.write_tx(db):  # checked and added under one lock
        if not may_enrol(db, actor, class_uuid, person):
            raise Forbidden(_l("only a coordinator may add this person to this class"))
        return add_member(db, class_uuid, user_uuid)


def learners_in_a_class(db) -> set[str]:
    """The learners who belong to at least one class (the others are still to be placed)."""
    rows = db.execute("SELECT DISTINCT user_uuid FROM memberships WHERE deleted = 0"
                      " AND role = 'learner'").fetchall()
    return {row[0] for row in rows}


def remove_member(db, class_uuid: str, user_uuid: str) -> None:
    membership = joined_uuid("membership", class_uuid, user_uuid)
    if records.load(db, "membership", membership) is None:
        raise NotFound(_l("this person is not in this class"))
    records.delete(db, "membership", membership)


def classes_of(db, user: dict) -> list[dict]:
    """The classes a person may see: all for a coordinator, their own for anyone else."""
    order = "t.name COLLATE NOCASE"
    if user["role"] == "coordinator":
        return records.query(db, "class", order=order)
    return records.query(db, "class", "m.user_uuid = ? AND m.deleted = 0", [user["uuid"]], order,
                         join="JOIN memberships m ON m.class_uuid = t.uuid")


def can_manage_class(db, user: dict, class_uuid: str) -> bool:
    if user["role"] == "coordinator":
        return True
    if user["role"] != "facilitator":
        return False
    membership = records.load(db, "membership", joined_uuid("membership", class_uuid, user["uuid"]))
    return membership is not None


def may_see_learner(db, user: dict, learner_uuid: str) -> bool:
    """May this staff member see this learner's record and history? Coordinators see every
    learner; a facilitator sees the learners of the classes they facilitate."""
    if user["role"] == "coordinator":
        return True
    if user["role"] != "facilitator":
        return False
    return db.execute(
        "SELECT 1 FROM memberships l JOIN memberships f ON f.class_uuid = l.class_uuid"
        " WHERE l.user_uuid = ? AND l.deleted = 0 AND f.user_uuid = ? AND f.deleted = 0"
        " AND f.role = 'facilitator' LIMIT 1", [learner_uuid, user["uuid"]]).fetchone() is not None


def all_classes(db) -> list[dict]:
    """Every class of the box, by name (the learners' sign-in page lists them)."""
    return records.query(db, "class", order="t.name COLLATE NOCASE")


def members(db, class_uuid: str, role: str = "learner") -> list[dict]:
    return records.query(db, "user", "m.class_uuid = ? AND m.role = ? AND m.deleted = 0",
                         [class_uuid, role], "t.display_name COLLATE NOCASE",
                         join="JOIN memberships m ON m.user_uuid = t.uuid")


def open_session(db, class_uuid: str, opened_by: str, *, date: str,
                 place: str = "", partner: str = "", topic: str = "") -> str:
    """A session on a given day. The day is never guessed: a session without one would be
    counted on no day, or on the wrong one, in the impact report."""
    get_class(db, class_uuid)
    date = (date or "").strip()
    try:
        valid = bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", date)) and bool(
            datetime.strptime(date, "%Y-%m-%d"))
    except ValueError:
        valid = False
    if not valid:
        raise InvalidInput(_l("the session is not valid"),
                           details={"date": _l("a date like %(example)s", example="2026-11-22")})
    session_uuid = new_uuid()
    records.put(db, "class_session", session_uuid, {
        "class_uuid": class_uuid, "date": date, "place": place.strip()[:120],
        "partner": partner.strip()[:120], "topic": topic.strip()[:200], "opened_by": opened_by,
        "closed": 0,
    })
    return session_uuid


def get_session(db, session_uuid: str) -> dict:
    return records.require(db, "class_session", session_uuid, _l("no such session"))


def mark_attendance(db, session_uuid: str, learner_uuid: str, present: bool) -> None:
    session = get_session(db, session_uuid)
    if learner_uuid not in {m["uuid"] for m in members(db, session["class_uuid"])}:
        raise InvalidInput(_l("this learner is not in the session's class"),
                           details={"learner": learner_uuid})
    records.put(db, "attendance", joined_uuid("attendance", session_uuid, learner_uuid),
                {"session_uuid": session_uuid, "learner_uuid": learner_uuid,
                 "present": 1 if present else 0})


def attendance(db, session_uuid: str) -> dict[str, bool]:
    rows = db.execute("SELECT learner_uuid, present FROM attendance"
                      " WHERE session_uuid = ? AND deleted = 0", [session_uuid]).fetchall()
    return {learner: bool(present) for learner, present in rows}


def sessions_of_class(db, class_uuid: str) -> list[dict]:
    return records.query(db, "class_session", "t.class_uuid = ?", [class_uuid],
                         "t.date DESC, t.version DESC")
