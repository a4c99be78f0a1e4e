"""A learner's own page: what they may change themselves, when the organisation allows it.

Changing one's PIN or pictures needs the current one, checked exactly as at sign-in
(:func:`accounts.authenticate_learner`: the same failure count and lockout), so a tablet
left signed in does not let someone else take the account. The new secret signs the learner
out everywhere else, as a reset by staff does.
"""

from __future__ import annotations

from passerelle.server.errors import Forbidden, InvalidInput
from passerelle.server.i18n import lazy_text as _l
from passerelle.server.people import accounts


def rights(db) -> dict:
    """What the organisation lets learners do on their own page."""
    org = accounts.organisation(db) or {}
    mode = org.get("signin_mode", "pin")
    return {"mode": mode,
            "edit_profile": bool(org.get("learners_edit_profile")),
            "change_secret": bool(org.get("learners_change_secret")) and mode in ("pin", "picture")}


def change_secret(db, learner: dict, current, new, client: str) -> dict:
    """Set a learner's new PIN (or pictures) after checking the current one; the updated user.

    Raises Forbidden when not allowed, ``accounts.SigninFailed`` or ``accounts.LockedOut``
    for a wrong current secret, InvalidInput for a new one that is not valid.
    """
    allowed = rights(db)
    if learner["role"] != "learner" or not allowed["change_secret"]:
        raise Forbidden(_l("your organisation does not let learners change this themselves"))
    mode = allowed["mode"]
    problem = accounts.check_pin(new) if mode == "pin" else accounts.check_picture(new)
    if problem:
        raise InvalidInput(_l("the new code is not valid"), details={"new": problem})
    accounts.authenticate_learner(db, learner["uuid"], current, client)
    if mode == "pin":
        return accounts.update_user(db, learner["uuid"], pin=new)
    return accounts.update_user(db, learner["uuid"], picture=new)


def update_profile(db, learner: dict, *, avatar: str | None, language: str | None,
                   profile: dict) -> dict:
    """A learner's own avatar, language and profile answers (never their name or role)."""
    if learner["role"] != "learner" or not rights(db)["edit_profile"]:
        raise Forbidden(_l("your organisation does not let learners change this themselves"))
    return accounts.update_user(db, learner["uuid"], avatar=avatar or None,
                                language=language or None, profile=profile)
