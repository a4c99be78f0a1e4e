"""The organisation's settings after setup: one page, coordinators only, what a new sign-in mode
means for learners said before it is saved."""

import sqlite3

from tests.conftest import csrf_token

FORM = {"org_name": "Maison de quartier", "languages": ["fr", "ar"], "signin_mode": "pin",
        "profile_fields": ["gender"], "purpose_gender": "our funder asks"}


def post(client, data):
    return client.post("/manage/settings", data={"csrf_token": csrf_token(client), **data})


def organisation(app):
    from passerelle.server.db import get_db
    from passerelle.server.people import accounts

    with app.app_context():
        return accounts.organisation(get_db())


def test_the_settings_page_shows_and_saves_the_organisation(app, as_user):
    cora = as_user("cora")
    html = cora.get("/manage/settings").get_data(as_text=True)
    assert 'value="Espace Numérique Test"' in html and "(now)" in html
    assert 'href="/manage/settings"' in cora.get("/manage").get_data(as_text=True)
    response = post(cora, {**FORM, "learners_edit_profile": "1"})
    assert response.status_code == 302
    assert "The settings are saved." in cora.get("/manage/settings").get_data(as_text=True)
    org = organisation(app)
    assert org["name"] == "Maison de quartier" and org["languages"] == ["fr", "ar"]
    assert org["profile_fields"] == {"gender": "our funder asks"}
    assert org["learners_edit_profile"] == 1 and org["learners_change_secret"] is None
    # An operation that syncs, like every organisation change.
    ops = sqlite3.connect(app.config["DB_PATH"]).execute(
        "SELECT count(*) FROM ops WHERE entity = 'organisation'").fetchone()[0]
    assert ops == 2


def test_every_problem_is_reported_and_nothing_is_saved(app, as_user):
    cora = as_user("cora")
    response = post(cora, {**FORM, "org_name": " ", "languages": []})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "the organisation needs a name" in html and "choose at least one of" in html
    assert organisation(app)["name"] == "Espace Numérique Test"


def test_a_new_sign_in_mode_says_what_happens_to_learners_first(app, as_user, box):
    cora = as_user("cora")
    response = post(cora, {**FORM, "signin_mode": "picture"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Before you change how learners sign in" in html
    assert "0 of the 3 learners already have what this mode asks for" in html
    assert "3 learners have none yet: they cannot sign in until they are given one." in html
    assert "Nothing is deleted" in html
    assert organisation(app)["signin_mode"] == "pin"  # not yet
    response = post(cora, {**FORM, "signin_mode": "picture", "confirm_mode": "picture"})
    assert response.status_code == 302
    assert organisation(app)["signin_mode"] == "picture"
    # Back to PINs: everyone still has theirs.
    html = post(cora, {**FORM, "signin_mode": "pin"}).get_data(as_text=True)
    assert "3 of the 3 learners already have what this mode asks for" in html
    assert "have none yet" not in html
    html = post(cora, {**FORM, "signin_mode": "none"}).get_data(as_text=True)
    assert "anyone can sign in as anyone" in html


def test_only_a_coordinator_reaches_the_settings(as_user):
    assert as_user("fatou").get("/manage/settings").status_code == 403
    assert as_user("amina").get("/manage/settings").status_code == 403
    assert 'href="/manage/settings"' not in as_user("fatou").get("/manage").get_data(as_text=True)


def test_a_question_switched_off_keeps_the_answers_given(app, as_user, box):
    cora = as_user("cora")
    response = cora.post(f"/manage/people/{box.ids['amina']}", data={
        "csrf_token": csrf_token(cora), "what": "details", "display_name": "Amina",
        "profile_gender": "woman"})
    assert response.status_code == 302
    post(cora, {**FORM, "profile_fields": ["age_band"]})
    # Editing her still works, and her answer is kept.
    response = cora.post(f"/manage/people/{box.ids['amina']}", data={
        "csrf_token": csrf_token(cora), "what": "details", "display_name": "Amina K."})
    assert response.status_code == 302
    from passerelle.server.db import get_db
    from passerelle.server.people import accounts

    with app.app_context():
        assert accounts.get_user(get_db(), box.ids["amina"])["profile"] == {"gender": "woman"}
