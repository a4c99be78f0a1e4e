"""A learner's own page (``/me``): what they completed, their certificates, and, when the
organisation allows it, their profile and their PIN or pictures."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import format_date, get_locale
from flask_babel import gettext as _
from markupsafe import Markup
from passerelle.kiosk import bp
from passerelle.kiosk.signin import client_key, signin_problem
from passerelle.server.db import get_db
from passerelle.server.errors import Forbidden, InvalidInput, NotFound
from passerelle.server.i18n import direction as i18n_direction
from passerelle.server.learning import progress
from passerelle.server.people import accounts, selfservice
from passerelle.server.reports import impact as reports
from passerelle.server.web.auth import allow, current_user, sign_in


def _secret_from(form, prefix: str, mode: str):
    if mode == "picture":
        return [form.get(f"{prefix}_{i}", "") for i in range(3)]
    return form.get(prefix, "")


def _page(errors: dict | None = None, form=None, status: int = 200, which: str = ""):
    """The page; ``which`` form (``secret`` or ``profile``) was just sent, with ``errors``."""
    db = get_db()
    me = current_user()
    done = progress.completed(db, me["uuid"])
    for item in done:
        item["completed_on"] = reports.version_time(item["completed_version"]).date()
    org = accounts.organisation(db) or {}
    values = {"avatar": me.get("avatar") or "", "language": me.get("language") or "",
              **{f"profile_{k}": (", ".join(v) if isinstance(v, list) else v)
                 for k, v in (me.get("profile") or {}).items()}}
    if which == "profile":
        values.update(form.to_dict())
    return render_template(
        "me.html", me=me, done=done, certificates=reports.completed_modules(db, [me["uuid"]]),
        rights=selfservice.rights(db), errors=errors or {}, values=values,
        secret_form=which == "secret",
        profile_fields=org.get("profile_fields") or {}, avatars=accounts.AVATARS,
        pictures=accounts.PICTURES, choices=accounts.PROFILE_CHOICES), status


def _not_allowed():
    # The page offered no such form (the organisation changed its mind meanwhile): say so there.
    flash(_("Your organisation does not let learners change this themselves. Ask a facilitator."))
    return redirect(url_for("kiosk.me_page"))


@bp.get("/me")
@allow("learner")
def me_page():
    return _page()


@bp.post("/me/secret")
@allow("learner")
def me_secret():
    db = get_db()
    mode = selfservice.rights(db)["mode"]
    form = request.form
    new = _secret_from(form, "new", mode)
    if mode == "pin" and new != form.get("new_again", ""):
        return _page({"new_again": _("The two new codes are not the same.")}, form, 400, "secret")
    try:
        user = selfservice.change_secret(db, current_user(), _secret_from(form, "current", mode),
                                         new, client_key())
    except (accounts.SigninFailed, accounts.LockedOut) as exc:
        message, status = signin_problem(exc, _("Your current code is not right."))
        return _page({"current": message}, form, status, "secret")
    except InvalidInput as exc:
        return _page({"new": str((exc.details or {}).get("new", exc.message))}, form, 400,
                     "secret")
    except Forbidden:
        return _not_allowed()
    # The new code ended every session, this one too: this tablet stays signed in.
    sign_in(user)
    flash(_("Your new code is saved. Use it next time you sign in."))
    return redirect(url_for("kiosk.me_page"))


@bp.post("/me/profile")
@allow("learner")
def me_profile():
    db = get_db()
    form = request.form
    profile = {k[len("profile_"):]: form.get(k) for k in form if k.startswith("profile_")}
    if profile.get("languages_spoken") is not None:
        profile["languages_spoken"] = [v.strip() for v in profile["languages_spoken"].split(",")
                                       if v.strip()]
    try:
        selfservice.update_profile(db, current_user(), avatar=form.get("avatar"),
                                   language=form.get("language"), profile=profile)
    except InvalidInput as exc:
        return _page(exc.details or {}, form, 400, "profile")
    except Forbidden:
        return _not_allowed()
    if form.get("language"):
        from flask import session

        session["language"] = form["language"]
    flash(_("Your changes are saved."))
    return redirect(url_for("kiosk.me_page"))


@bp.get("/me/certificates/<pack_id>/<path:node_id>")
@allow("learner")
def me_certificate(pack_id: str, node_id: str):
    """The learner's own certificate, to print or show, in their language."""
    db = get_db()
    me = current_user()
    back = url_for("kiosk.me_page")
    try:
        found = reports.certificate(db, me["uuid"], pack_id, node_id)
    except NotFound:
        return render_template("manage/certificate.html", certificate=None, back_url=back,
                               back_label=_("Back to my page"),
                               message=_("This module is not completed yet, so there is no "
                                         "certificate to print.")), 404
    # In the page's language: the learner's own once signed in (see ``sign_in``).
    body = render_template("manage/certificate_body.html", certificate=found,
                           completed_on=format_date(found.completed_on, format="long"))
    return render_template("manage/certificate.html", certificate=found, message=None,
                           body=Markup(body),  # noqa: S704 - our template
                           certificate_lang=str(get_locale()), certificate_dir=i18n_direction(),
                           language_links={}, back_url=back, back_label=_("Back to my page"))
