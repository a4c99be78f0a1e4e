"""What the staff pages share: who counts as staff, the person form, a class the signed-in
staff member may manage, and the page that asks before a destructive action."""

from __future__ import annotations

from flask import render_template
from passerelle.server import records
from passerelle.server.people import accounts
from passerelle.server.web.auth import (
    current_user,
    require,
)

STAFF = accounts.STAFF


def person_from_form(form, mode: str) -> dict:
    """The fields of a new person, as the organisation's sign-in mode needs them."""
    role = form.get("role", "learner")
    fields = {
        "role": role,
        "display_name": form.get("display_name", ""),
        "username": form.get("username") or None,
        "avatar": form.get("avatar") or None,
        "language": form.get("language") or None,
        "profile": {k[len("profile_"):]: (form.getlist(k) if k == "profile_languages_spoken"
                                          else form.get(k))
                    for k in form if k.startswith("profile_")},
    }
    if fields["profile"].get("languages_spoken") is not None:
        fields["profile"]["languages_spoken"] = [
            v.strip() for v in ",".join(fields["profile"]["languages_spoken"]).split(",") if v.strip()]
    if role in STAFF or mode == "password":
        fields["password"] = form.get("password", "")
    elif mode == "pin":
        fields["pin"] = form.get("pin", "")
    elif mode == "picture":
        fields["picture"] = [form.get(f"picture_{i}", "") for i in range(3)]
    if form.get("consent"):
        fields["consent"] = {"given_at": records.now_iso(), "recorded_by": current_user()["uuid"]}
    return fields


def people_context(db):
    org = accounts.organisation(db) or {}
    return {
        "mode": org.get("signin_mode", "pin"),
        "profile_fields": org.get("profile_fields") or {},
        "avatars": accounts.AVATARS, "pictures": accounts.PICTURES,
        "choices": accounts.PROFILE_CHOICES,
    }



def managed_class(db, class_uuid: str) -> dict:
    group = accounts.get_class(db, class_uuid)
    require(accounts.can_manage_class(db, current_user(), class_uuid))
    return group



def confirm_page(title: str, losses: list[str], button: str, back: str, keeps: str = "",
                 hidden: list[tuple[str, str]] | None = None):
    """A page of its own that says what an action will lose, before it is done (no JavaScript:
    the link shows this page, only its form's POST acts). ``hidden``: fields its form sends
    again (what was chosen on the page before, for an action on several things)."""
    return render_template("manage/confirm.html", title=title, losses=losses, keeps=keeps,
                           button=button, back=back, hidden=hidden or [])
