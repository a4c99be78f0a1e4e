"""First-start setup, signing in and out."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from passerelle.kiosk import bp
from passerelle.server.db import get_db
from passerelle.server.errors import InvalidInput
from passerelle.server.i18n import LANG_COOKIE
from passerelle.server.people import accounts
from passerelle.server.web import captive, network
from passerelle.server.web.auth import ANYONE, allow, current_user, sign_in, sign_out
from passerelle.server.web.security import safe_next


def client_key() -> str:
    return request.remote_addr or "unknown"


def signin_problem(exc: Exception, wrong: str) -> tuple[str, int]:
    """The words and status for a refused sign-in: locked out, or simply wrong."""
    if isinstance(exc, accounts.LockedOut):
        return _("Too many attempts. Try again in %(minutes)s minutes.",
                 minutes=max(1, round(exc.retry_after / 60))), 429
    return wrong, 401


@bp.route("/setup", methods=["GET", "POST"])
@allow(ANYONE)
def setup():
    """The organisation and its first coordinator, once, on a new box."""
    db = get_db()
    if not accounts.needs_setup(db):
        return redirect(url_for("kiosk.home"))
    errors, form = {}, request.form
    offer_wifi = current_app.config["SETTINGS"]["network_requests"]
    if request.method == "POST":
        try:
            wifi = (network.check_wifi(form.get("wifi_name", ""), form.get("wifi_passphrase", ""))
                    if offer_wifi else {})
        except InvalidInput as exc:
            errors = dict(exc.details or {})
            wifi = {}
        try:
            if errors:  # checked before anything is created: nothing is half done
                raise InvalidInput("", details=errors)
            uid = accounts.setup(
                db, org_name=form.get("org_name", ""),
                languages=form.getlist("languages"),
                signin_mode=form.get("signin_mode", ""),
                profile_fields={f: form.get(f"purpose_{f}", "").strip()
                                for f in form.getlist("profile_fields")},
                display_name=form.get("display_name", ""),
                username=form.get("username", ""), password=form.get("password", ""),
                password_again=form.get("password_again", ""))
        except InvalidInput as exc:
            errors = exc.details or {}
        except accounts.Conflict:  # someone else finished setting the box up meanwhile
            return redirect(url_for("kiosk.home"))
        else:
            sign_in(accounts.get_user(db, uid))
            flash(_("Your box is ready. Welcome!"))
            if network.ask(current_app.config["HOME"].root, wifi):
                flash(_("The box's Wi-Fi changes in a few seconds: join the new Wi-Fi, then open "
                        "%(address)s again.", address=captive.BOX_URL))
            return redirect(url_for("kiosk.manage_home"))
    return render_template("setup.html", errors=errors, form=form, offer_wifi=offer_wifi,
                           box_url=captive.BOX_URL, modes=accounts.SIGNIN_MODES,
                           fields=accounts.PROFILE_FIELDS), 400 if errors else 200


@bp.get("/signin")
@allow(ANYONE)
def signin():
    """Learners pick their class, then their name; staff have their own form."""
    db = get_db()
    classes = accounts.all_classes(db)
    # Only a page the person asked for is carried on: without one, staff go to their own home.
    return render_template("signin.html", classes=classes,
                           next=safe_next(request.args.get("next"), "") or None)


@bp.route("/signin/staff", methods=["GET", "POST"])
@allow(ANYONE)
def signin_staff():
    error = None
    status = 200
    if request.method == "POST":
        try:
            user = accounts.authenticate_staff(get_db(), request.form.get("username", ""),
                                               request.form.get("password", ""), client_key())
        except (accounts.LockedOut, accounts.SigninFailed) as exc:
            error, status = signin_problem(exc, _("Wrong username or password."))
        else:
            sign_in(user)
            target = safe_next(request.args.get("next"), url_for("kiosk.manage_home"))
            if target == url_for("kiosk.home"):  # the learners' home is not where staff work
                target = url_for("kiosk.manage_home")
            return redirect(target)
    return render_template("signin_staff.html", error=error,
                           username=request.form.get("username", "")), status


@bp.get("/signin/class/<class_uuid>")
@allow(ANYONE)
def signin_class(class_uuid: str):
    db = get_db()
    group = accounts.get_class(db, class_uuid)
    return render_template("signin_class.html", group=group,
                           learners=accounts.members(db, class_uuid))


@bp.route("/signin/learner/<user_uuid>", methods=["GET", "POST"])
@allow(ANYONE)
def signin_learner(user_uuid: str):
    db = get_db()
    learner = accounts.get_user(db, user_uuid)
    if learner["role"] != "learner":
        return redirect(url_for("kiosk.signin_staff"))
    mode = (accounts.organisation(db) or {}).get("signin_mode", "pin")
    error, status = None, 200
    if request.method == "POST":
        if mode == "picture":  # three rows of pictures, one choice each, in order
            secret = [request.form.get(f"picture_{i}", "") for i in range(3)]
        else:
            secret = request.form.get("secret", "")
        try:
            user = accounts.authenticate_learner(db, user_uuid, secret, client_key())
        except (accounts.LockedOut, accounts.SigninFailed) as exc:
            error, status = signin_problem(exc, _("That is not right. Try again."))
        else:
            sign_in(user)
            return redirect(url_for("kiosk.home"))
    return render_template("signin_learner.html", learner=learner, mode=mode, error=error,
                           pictures=accounts.PICTURES), status


@bp.post("/signout")
@allow(ANYONE)
def signout():
    was = current_user()
    sign_out()
    if was and was["role"] == "learner":
        flash(_("Well done! See you next time."))
    response = redirect(url_for("kiosk.signin"))
    # The next person finds the box's language (their browser's, or the default),
    # not the one the last person read in.
    response.delete_cookie(LANG_COOKIE, samesite="Lax", httponly=True)
    return response
