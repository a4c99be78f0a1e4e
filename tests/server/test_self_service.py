"""A learner's own page: what they completed, their certificates, and their PIN or profile when
the organisation allows it (with the current PIN, and the sign-in lockout)."""

from tests.conftest import csrf_token


def allow_learners(app, *, profile=True, secret=True, mode=None):
    from passerelle.server.db import get_db
    from passerelle.server.people import accounts

    with app.app_context():
        db = get_db()
        changes = {"learners_edit_profile": 1 if profile else None,
                   "learners_change_secret": 1 if secret else None}
        if mode:
            changes["signin_mode"] = mode
        accounts.update_organisation(db, **changes)


def complete_module(app, learner_uuid):
    from passerelle.server.db import get_db
    from passerelle.server.learning import progress
    from passerelle.server.reports import impact

    with app.app_context():
        db = get_db()
        for node in impact.module_resources(db, "demo-fr", "basics"):
            progress.complete(db, learner_uuid, "demo-fr", node)


def post(client, path, data):
    return client.post(path, data={"csrf_token": csrf_token(client), **data})


def test_my_page_lists_what_i_completed_and_my_certificates(app, as_user, box):
    amina = as_user("amina")
    html = amina.get("/me").get_data(as_text=True)
    assert "My certificates" in html and "Nothing yet." in html
    assert 'href="/me"' in amina.get("/").get_data(as_text=True)  # one tap from anywhere
    # Not allowed by default: no form to change anything.
    assert "Change my PIN" not in html and "About me" not in html
    complete_module(app, box.ids["amina"])
    html = amina.get("/me").get_data(as_text=True)
    assert "resources completed" in html
    link = "/me/certificates/demo-fr/basics"
    assert f'href="{link}"' in html
    certificate = amina.get(link).get_data(as_text=True)
    assert "Certificate of completion" in certificate and "Amina" in certificate
    assert "Back to my page" in certificate and "impact report" not in certificate
    # Bart has not completed it: no certificate for him, and none of Amina's.
    bart = as_user("bart")
    assert bart.get(link).status_code == 404
    assert "Amina" not in bart.get("/me").get_data(as_text=True)


def test_staff_have_no_learner_page(as_user):
    assert as_user("fatou").get("/me").status_code == 403
    assert as_user(None).get("/me").status_code in (302, 401)


def test_changing_my_pin_needs_the_current_one(app, as_user, box):
    amina = as_user("amina")
    response = post(amina, "/me/secret", {"current": "1234", "new": "5678", "new_again": "5678"})
    assert "does not let learners change this" in amina.get(response.headers["Location"]).get_data(
        as_text=True)
    allow_learners(app)
    assert "Change my PIN" in amina.get("/me").get_data(as_text=True)
    response = post(amina, "/me/secret", {"current": "0000", "new": "5678", "new_again": "5678"})
    assert response.status_code == 401
    assert "Your current code is not right." in response.get_data(as_text=True)
    response = post(amina, "/me/secret", {"current": "1234", "new": "56", "new_again": "56"})
    assert response.status_code == 400 and "exactly 4 digits" in response.get_data(as_text=True)
    response = post(amina, "/me/secret", {"current": "1234", "new": "5678", "new_again": "5679"})
    assert "The two new codes are not the same." in response.get_data(as_text=True)
    response = post(amina, "/me/secret", {"current": "1234", "new": "5678", "new_again": "5678"})
    assert response.status_code == 302
    # Still signed in on this tablet, with the new PIN from now on.
    assert "Your new code is saved." in amina.get("/me").get_data(as_text=True)
    other = app.test_client()
    token = csrf_token(other)
    assert other.post(f"/signin/learner/{box.ids['amina']}",
                      data={"csrf_token": token, "secret": "1234"}).status_code == 401
    assert other.post(f"/signin/learner/{box.ids['amina']}",
                      data={"csrf_token": token, "secret": "5678"}).status_code == 302


def test_guessing_the_current_pin_locks_out_as_signing_in_does(app, as_user, box):
    allow_learners(app)
    bart = as_user("bart")
    statuses = [post(bart, "/me/secret", {"current": f"{n:04d}", "new": "5678",
                                          "new_again": "5678"}).status_code for n in range(6)]
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    response = post(bart, "/me/secret", {"current": "2345", "new": "5678", "new_again": "5678"})
    assert response.status_code == 429 and "Too many attempts" in response.get_data(as_text=True)


def test_changing_my_pictures(app, as_user, box):
    from passerelle.server.db import get_db
    from passerelle.server.people import accounts

    with app.app_context():
        accounts.update_user(get_db(), box.ids["chloe"], picture=["sun", "moon", "tree"])
    chloe = as_user("chloe")
    allow_learners(app, mode="picture")
    assert "Change my pictures" in chloe.get("/me").get_data(as_text=True)
    new = {"new_0": "cat", "new_1": "fish", "new_2": "boat"}
    response = post(chloe, "/me/secret", {"current_0": "sun", "current_1": "moon",
                                          "current_2": "tree", **new})
    assert response.status_code == 302
    with app.app_context():
        assert accounts.authenticate_learner(get_db(), box.ids["chloe"], ["cat", "fish", "boat"],
                                             "test")


def test_editing_my_profile(app, as_user, box):
    amina = as_user("amina")
    assert post(amina, "/me/profile", {"avatar": "owl"}).status_code == 302  # and nothing done
    allow_learners(app, secret=False)
    html = amina.get("/me").get_data(as_text=True)
    assert "About me" in html and "Change my PIN" not in html
    response = post(amina, "/me/profile", {"avatar": "owl", "language": "ar",
                                           "profile_gender": "woman", "display_name": "Hacker",
                                           "role": "coordinator"})
    assert response.status_code == 302
    from passerelle.server.db import get_db
    from passerelle.server.people import accounts

    with app.app_context():
        me = accounts.get_user(get_db(), box.ids["amina"])
    assert (me["avatar"], me["language"], me["profile"]) == ("owl", "ar", {"gender": "woman"})
    assert (me["display_name"], me["role"]) == ("Amina", "learner")  # never theirs to change
    response = post(amina, "/me/profile", {"profile_gender": "robot"})
    assert response.status_code == 400
