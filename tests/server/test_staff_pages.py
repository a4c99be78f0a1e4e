"""Staff pages: the way home, facilitators on classes, editing people, confirmations, the bin."""

import re
import sqlite3

from tests.conftest import PASSWORDS, csrf_token


def post(client, path, **data):
    return client.post(path, data={"csrf_token": csrf_token(client), **data})


def test_staff_sign_in_from_the_sign_in_page_leads_to_the_staff_home(client, box):
    page = client.get("/signin").get_data(as_text=True)
    link = re.search(r'href="([^"]*/signin/staff[^"]*)"', page).group(1)
    assert "next" not in link, "no page was asked for, so none is carried on"
    response = client.post(link.replace("&amp;", "&"), data={
        "csrf_token": csrf_token(client), "username": "fatou",
        "password": PASSWORDS["fatou"]})
    assert response.headers["Location"].endswith("/manage")
    # Asked for the learners' home explicitly: staff still land on their own.
    client.post("/signout", data={"csrf_token": csrf_token(client)})
    response = client.post("/signin/staff?next=/", data={
        "csrf_token": csrf_token(client), "username": "fatou",
        "password": PASSWORDS["fatou"]})
    assert response.headers["Location"].endswith("/manage")


def test_every_staff_page_links_home_and_the_learner_home_shows_staff_the_way(as_user, box):
    fatou = as_user("fatou")
    home = fatou.get("/").get_data(as_text=True)
    assert "Go to the staff pages" in home and 'href="/manage"' in home
    for path in ("/manage/classes", f"/manage/classes/{box.ids['class_a']}", "/manage/lessons"):
        assert "Back to the staff home" in fatou.get(path).get_data(as_text=True), path
    learner_home = as_user("amina").get("/").get_data(as_text=True)
    assert "Go to the staff pages" not in learner_home and 'href="/manage"' not in learner_home


def test_a_coordinator_assigns_facilitators_when_creating_a_class_and_on_its_page(as_user, box):
    cora = as_user("cora")
    assert "Facilitators of this class" in cora.get("/manage/classes").get_data(as_text=True)
    response = post(cora, "/manage/classes", name="Atelier CV", facilitator=box.ids["farid"])
    class_page = response.headers["Location"]
    assert "Farid" in cora.get(class_page).get_data(as_text=True)
    # Farid now sees it on his home page.
    assert "Atelier CV" in as_user("farid").get("/manage").get_data(as_text=True)
    # On the class page: assign Fatou too.
    post(cora, class_page + "/facilitators", facilitator=box.ids["fatou"])
    assert "Atelier CV" in as_user("fatou").get("/manage").get_data(as_text=True)
    # A facilitator cannot assign facilitators.
    fatou = as_user("fatou")
    assert post(fatou, class_page + "/facilitators", facilitator=box.ids["farid"]).status_code == 403
    assert "Assign facilitators to this class" not in fatou.get(class_page).get_data(as_text=True)


def test_many_learners_are_added_with_one_form(as_user, box):
    cora = as_user("cora")
    class_page = post(cora, "/manage/classes", name="Soir").headers["Location"]
    page = cora.get(class_page).get_data(as_text=True)
    assert page.count('type="checkbox" name="user_uuid"') == 3
    response = cora.post(class_page + "/members", data={
        "csrf_token": csrf_token(cora), "user_uuid": [box.ids["amina"], box.ids["chloe"]]})
    assert response.status_code == 302
    page = cora.get(class_page).get_data(as_text=True)
    assert "Learners (2)" in page


def test_learners_to_add_are_found_by_name_and_shown_a_page_at_a_time(as_user, box, monkeypatch):
    from passerelle.kiosk.manage import classes

    cora = as_user("cora")
    class_page = post(cora, "/manage/classes", name="Matin").headers["Location"]
    found = cora.get(class_page + "?find=AMÍNA").get_data(as_text=True)  # capitals, accents aside
    assert found.count('type="checkbox" name="user_uuid"') == 1 and box.ids["amina"] in found
    nobody = cora.get(class_page + "?find=zzz").get_data(as_text=True)
    assert "No learner to add has this name." in nobody and 'name="user_uuid"' not in nobody
    monkeypatch.setattr(classes, "ADDABLE_SHOWN", 2)
    capped = cora.get(class_page).get_data(as_text=True)
    assert capped.count('type="checkbox" name="user_uuid"') == 2
    assert "2 of 3 learners shown" in capped


def test_a_facilitator_is_offered_only_learners_in_no_class(as_user, box):
    cora = as_user("cora")
    loner = post(cora, "/manage/people", role="learner", display_name="Lina", pin="4321")
    assert loner.status_code == 302
    page = as_user("fatou").get(f"/manage/classes/{box.ids['class_a']}").get_data(as_text=True)
    offered = re.findall(r'name="user_uuid" value="[^"]+"> .*? ([^<>]+)</label>', page)
    assert [o.strip() for o in offered] == ["Lina"]


def test_a_coordinator_resets_a_pin_without_losing_anything(as_user, box, client):
    cora = as_user("cora")
    page = cora.get(f"/manage/people/{box.ids['amina']}").get_data(as_text=True)
    assert "New PIN" in page and 'value="Amina"' in page
    response = post(cora, f"/manage/people/{box.ids['amina']}", what="secret", pin="12")
    assert response.status_code == 400 and "exactly 4 digits" in response.get_data(as_text=True)
    response = post(cora, f"/manage/people/{box.ids['amina']}", what="secret", pin="9876")
    assert response.status_code == 302
    # The new PIN works, the old one no longer does.
    token = csrf_token(client)
    assert client.post(f"/signin/learner/{box.ids['amina']}",
                               data={"csrf_token": token, "secret": "1234"}).status_code == 401
    assert client.post(f"/signin/learner/{box.ids['amina']}",
                               data={"csrf_token": token, "secret": "9876"}).status_code == 302
    # Still in her class.
    assert "Amina" in cora.get(f"/manage/classes/{box.ids['class_a']}").get_data(as_text=True)


def test_a_person_is_edited(as_user, box):
    cora = as_user("cora")
    response = post(cora, f"/manage/people/{box.ids['bart']}", what="details",
                    display_name="Bart De Smet", username="", language="nl", avatar="owl",
                    profile_gender="man")
    assert response.status_code == 302
    page = cora.get(f"/manage/people/{box.ids['bart']}").get_data(as_text=True)
    assert 'value="Bart De Smet"' in page and '<option value="nl" lang="nl" selected' in page
    assert '<option value="man" selected' in page


def test_a_facilitator_edits_learners_of_their_classes_only(as_user, box):
    fatou = as_user("fatou")
    assert fatou.get(f"/manage/people/{box.ids['amina']}").status_code == 200
    assert fatou.get(f"/manage/people/{box.ids['chloe']}").status_code == 403
    assert fatou.get(f"/manage/people/{box.ids['farid']}").status_code == 403
    assert post(fatou, f"/manage/people/{box.ids['chloe']}", what="secret",
                pin="1111").status_code == 403


def test_taking_a_learner_out_asks_first_and_says_what_changes(as_user, box):
    fatou = as_user("fatou")
    path = f"/manage/classes/{box.ids['class_a']}/members/{box.ids['amina']}/remove"
    page = fatou.get(path).get_data(as_text=True)
    assert "Take Amina out of Groupe A?" in page and "progress and attendance are kept" in page
    assert "Learners (2)" in fatou.get(f"/manage/classes/{box.ids['class_a']}").get_data(as_text=True)
    post(fatou, path)
    assert "Learners (1)" in fatou.get(f"/manage/classes/{box.ids['class_a']}").get_data(as_text=True)


def test_a_removed_person_comes_back_from_the_bin_with_their_classes(as_user, box, app):
    cora = as_user("cora")
    page = cora.get(f"/manage/people/{box.ids['amina']}/delete").get_data(as_text=True)
    assert "Remove Amina?" in page and "one click" in page
    post(cora, f"/manage/people/{box.ids['amina']}/delete")
    people = cora.get("/manage/people").get_data(as_text=True)
    assert "Bin: people removed" in people and "Put Amina back" in people
    post(cora, f"/manage/people/{box.ids['amina']}/restore")
    people = cora.get("/manage/people").get_data(as_text=True)
    assert "Put Amina back" not in people
    assert "Amina" in cora.get(f"/manage/classes/{box.ids['class_a']}").get_data(as_text=True)
    db = sqlite3.connect(app.config["DB_PATH"])
    assert db.execute("SELECT pin_hash IS NOT NULL FROM users WHERE uuid = ?",
                      [box.ids["amina"]]).fetchone()[0] == 1


def test_a_session_without_a_date_is_refused(as_user, box, app):
    fatou = as_user("fatou")
    db = sqlite3.connect(app.config["DB_PATH"])
    before = db.execute("SELECT count(*) FROM class_sessions").fetchone()[0]
    response = post(fatou, f"/manage/classes/{box.ids['class_a']}/sessions", date="", topic="x")
    assert response.status_code == 302
    assert db.execute("SELECT count(*) FROM class_sessions").fetchone()[0] == before
    page = fatou.get(response.headers["Location"]).get_data(as_text=True)
    assert "Choose the day of the session" in page
    assert post(fatou, f"/manage/classes/{box.ids['class_a']}/sessions",
                date="2026-02-30").status_code == 302
    assert db.execute("SELECT count(*) FROM class_sessions").fetchone()[0] == before


def test_session_dates_are_in_the_page_language(as_user, box):
    fatou = as_user("fatou")
    post(fatou, f"/manage/classes/{box.ids['class_a']}/sessions", date="2026-12-07")
    page = fatou.get(f"/manage/classes/{box.ids['class_a']}").get_data(as_text=True)
    assert "Monday, December 7, 2026" in page
    fatou.get("/language/fr")
    page = fatou.get(f"/manage/classes/{box.ids['class_a']}").get_data(as_text=True)
    assert "lundi 7 décembre 2026" in page and "2026-12-07</a>" not in page


def wait_for_jobs(app):
    import time

    jobs = app.extensions["passerelle.jobs"]
    deadline = time.monotonic() + 300  # a generous bound on a busy machine, never a measure
    while jobs.busy() and time.monotonic() < deadline:
        time.sleep(0.05)
    return jobs.recent()


def test_a_removed_pack_waits_in_the_bin_and_comes_back_with_progress(as_user, box, app):
    cora = as_user("cora")
    content = cora.get("/manage/content").get_data(as_text=True)
    assert "0.0 MB" not in content
    assert re.search(r"\d+(\.\d)? kB", content), "sizes in words a person reads"
    page = cora.get("/manage/content/demo-fr/remove").get_data(as_text=True)
    assert "progress is kept" in page and "Yes, remove" in page
    post(cora, "/manage/content/demo-fr/remove")
    content = cora.get("/manage/content").get_data(as_text=True)
    assert "Bin: packs removed" in content and "Put " in content
    assert (box.home / "bin" / "packs" / "demo-fr.zip").is_file()
    post(cora, "/manage/content/bin/demo-fr/restore")
    assert wait_for_jobs(app)[0].state == "done"
    content = cora.get("/manage/content").get_data(as_text=True)
    assert 'href="/manage/content/demo-fr"' in content
    assert not (box.home / "bin" / "packs" / "demo-fr.zip").exists()


def test_the_content_page_shows_what_is_inside_a_pack(as_user):
    page = as_user("cora").get("/manage/content/demo-fr").get_data(as_text=True)
    assert "Bienvenue" in page and "Petit quiz" in page and "Preview Bienvenue" in page
    assert '<svg class="icon" role="img" aria-label="Exercise"' in page


def test_the_bundled_library_can_be_put_back(as_user, app):
    cora = as_user("cora")
    assert "Put back the library that comes with Passerelle" in cora.get(
        "/manage/content").get_data(as_text=True)
    post(cora, "/manage/content/bundled")
    jobs = wait_for_jobs(app)
    assert jobs and all(j.state == "done" for j in jobs)
    page = cora.get("/manage/content").get_data(as_text=True)
    assert "arithmetic-fr" in page
    assert "Put back the library that comes with Passerelle" not in page


def test_the_lesson_builder_browses_reorders_and_edits(as_user, box):
    fatou = as_user("fatou")
    page = fatou.get("/manage/lessons/new").get_data(as_text=True)
    assert "<details" in page and 'name="add"' in page and "Preview Bienvenue" in page
    assert '<svg class="icon"' in page
    values = re.findall(r'name="add" value="([^"]+)"', page)
    first, second = values[0], values[1]
    token = csrf_token(fatou)
    page = fatou.post("/manage/lessons/new", data={
        "csrf_token": token, "title": "Pas à pas", "add": [first, second], "action": "add"}
    ).get_data(as_text=True)
    assert re.findall(r'name="item" value="([^"]+)"', page) == [first, second]
    page = fatou.post("/manage/lessons/new", data={
        "csrf_token": token, "title": "Pas à pas", "item": [first, second], "action": "down:0"}
    ).get_data(as_text=True)
    assert re.findall(r'name="item" value="([^"]+)"', page) == [second, first]
    response = fatou.post("/manage/lessons/new", data={
        "csrf_token": token, "title": "Pas à pas", "item": [second, first], "action": "save"})
    assert response.status_code == 302
    listing = fatou.get(response.headers["Location"]).get_data(as_text=True)
    assert f'/manage/classes/{box.ids["class_a"]}?lesson=' in listing
    edit = re.search(r'href="(/manage/lessons/[^"]+/edit)"', listing).group(1)
    page = fatou.get(edit).get_data(as_text=True)
    assert re.findall(r'name="item" value="([^"]+)"', page) == [second, first]
    fatou.post(edit, data={"csrf_token": token, "title": "Pas à pas", "item": [first],
                           "action": "save"})
    page = fatou.get(edit).get_data(as_text=True)
    assert re.findall(r'name="item" value="([^"]+)"', page) == [first]


def test_questions_most_often_missed_read_as_the_learner_saw_them(as_user, box, app):
    from passerelle.server.db import get_db
    from passerelle.server.learning import lessons, progress
    from passerelle.server.packs import catalogue

    with app.app_context():
        db = get_db()
        exercise = catalogue.node(db, "demo-fr", "basics/quiz")["exercise"]
        for i in range(2):
            progress.answer(db, box.ids["bart"], exercise, "demo-fr", "basics/quiz",
                            attempt=f"t:{i}", question_id="q2", given=5, correct=False,
                            values={"a": 3 + i, "b": 4})
        quiz = lessons.create_lesson(db, "Quiz", [{"pack_id": "demo-fr", "node_id": "basics/quiz"}],
                                     box.ids["fatou"])
        lessons.assign(db, quiz, box.ids["class_a"], box.ids["fatou"])
    page = as_user("fatou").get(f"/manage/classes/{box.ids['class_a']}/grid").get_data(as_text=True)
    assert "Combien font 4 + 4 ?" in page and "{a}" not in page


def test_the_setup_form_reports_every_password_problem_at_once(fresh_client, fresh_app):
    form = {"csrf_token": csrf_token(fresh_client), "org_name": "", "languages": ["fr"],
            "signin_mode": "pin", "display_name": "Nadia", "username": "nadia",
            "password": "aaaa", "password_again": "aaab"}
    response = fresh_client.post("/setup", data=form)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "at least 10 characters" in page and "use more different characters" in page
    assert "The two passwords are not the same." in page
    assert "the organisation needs a name" in page
    db = sqlite3.connect(fresh_app.config["DB_PATH"])
    assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 0


def test_a_coordinator_downloads_a_backup_and_restores_it_after_confirming(as_user, box, app):
    cora = as_user("cora")
    assert as_user("fatou").get("/manage/backups").status_code == 403
    page = cora.get("/manage/backups").get_data(as_text=True)
    assert "Download a backup now" in page and "Turn the nightly backup on" in page
    download = cora.get("/manage/backups/download")
    assert download.status_code == 200 and download.data.startswith(b"SQLite format 3\x00")
    # Something changes after the backup...
    post(cora, "/manage/classes", name="Après la sauvegarde")
    assert "Après la sauvegarde" in cora.get("/manage/classes").get_data(as_text=True)
    # ...and the backup is put back: a confirmation page first, saying what is lost.
    import io

    response = cora.post("/manage/backups/restore", data={
        "csrf_token": csrf_token(cora), "backup": (io.BytesIO(download.data), "b.db")},
        content_type="multipart/form-data")
    confirm = response.headers["Location"]
    page = cora.get(confirm).get_data(as_text=True)
    assert "Restore this backup?" in page and "Everyone is signed out" in page
    assert "Après la sauvegarde" in cora.get("/manage/classes").get_data(as_text=True)
    response = post(cora, confirm)
    assert response.headers["Location"].endswith("/signin/staff")
    cora = as_user("cora")
    assert "Après la sauvegarde" not in cora.get("/manage/classes").get_data(as_text=True)


def test_a_file_that_is_not_a_backup_is_refused(as_user):
    import io

    cora = as_user("cora")
    response = cora.post("/manage/backups/restore", data={
        "csrf_token": csrf_token(cora), "backup": (io.BytesIO(b"not a database"), "x.db")},
        content_type="multipart/form-data", follow_redirects=True)
    assert "This file cannot be restored" in response.get_data(as_text=True)


def test_the_nightly_backup_goes_on_the_usb_stick(as_user, box, app, tmp_path):
    import time

    from passerelle.server import backups
    from passerelle.server.db import get_db

    cora = as_user("cora")
    post(cora, "/manage/backups/nightly", nightly="1")
    assert "Turn the nightly backup off" in cora.get("/manage/backups").get_data(as_text=True)
    stick = tmp_path / "media" / "STICK"
    stick.mkdir(parents=True)
    with app.app_context():
        db = get_db()
        night = time.mktime((2026, 12, 8, 3, 0, 0, 0, 0, -1))
        assert backups.due(db, now=night)
        assert backups.usb_sticks([str(tmp_path / "media")]) == [], "a folder is not a stick"
        written = backups.backup_to_usb(db, app.config["HOME"], roots=[str(tmp_path / "media")],
                                        mounted=lambda p: p == stick)
        assert written.parent == stick / "passerelle-backups" and written.is_file()
        assert not backups.due(db, now=time.time() + 3600), "not twice the same night"
        thread = backups.NightlyBackup(lambda: get_db(), app.config["HOME"], roots=[])
        assert thread.check() is None  # not due again, and no stick anyway


def test_the_sync_page_offers_usb_bundles_as_buttons_and_no_timer_without_a_hub(as_user):
    import io

    cora = as_user("cora")
    page = cora.get("/manage/sync").get_data(as_text=True)
    assert "Download a sync bundle" in page and "Upload and apply the bundle" in page
    assert "every 15 minutes" not in page and "this box has no hub" in page
    download = post(cora, "/manage/sync/bundle/export")
    assert download.status_code == 200 and download.data[:2] == b"PK"
    refused = cora.post("/manage/sync/bundle/import", data={
        "csrf_token": csrf_token(cora), "bundle": (io.BytesIO(b"not a bundle"), "x.bundle")},
        content_type="multipart/form-data", follow_redirects=True)
    assert "The bundle was refused, nothing was applied" in refused.get_data(as_text=True)


def test_a_session_without_a_day_never_counts_in_the_impact_report(as_user, box, app):
    """Even one arriving by sync from an older box: the report counts sessions by their day."""
    from datetime import date

    from passerelle.server import records
    from passerelle.server.db import get_db
    from passerelle.server.reports import impact

    with app.app_context():
        db = get_db()
        before = impact.impact(db, date(2000, 1, 1), date(2100, 1, 1)).sessions
        for day in ("", None):
            records.put(db, "class_session", f"dateless-{day}", {
                "class_uuid": box.ids["class_a"], "date": day, "place": "", "partner": "",
                "topic": "", "opened_by": box.ids["fatou"], "closed": 0})
        assert impact.impact(db, date(2000, 1, 1), date(2100, 1, 1)).sessions == before


def test_a_preview_from_the_builder_opens_for_staff(as_user):
    assert as_user("fatou").get("/learn/demo-fr/basics/welcome").status_code == 200


def test_a_class_on_a_box_without_facilitators_shows_where_to_add_one(fresh_app, fresh_client):
    from passerelle.server.db import get_db
    from passerelle.server.people import accounts

    with fresh_app.app_context():
        db = get_db()
        accounts.setup(db, org_name="Maison", languages=["fr", "en"], signin_mode="pin",
                       profile_fields={}, display_name="Nadia", username="nadia",
                       password="une phrase assez longue")
        class_uuid = accounts.create_class(db, "Français du soir")
    post(fresh_client, "/signin/staff", username="nadia", password="une phrase assez longue")
    page = fresh_client.get(f"/manage/classes/{class_uuid}").get_data(as_text=True)
    assert "Add a facilitator on the People page first" in page
    assert 'href="/manage/people#add"' in page


def test_the_class_grid_heading_is_one_sentence_in_each_language(as_user, box):
    fatou = as_user("fatou")
    fatou.get("/language/fr?next=/manage")
    page = fatou.get(f"/manage/classes/{box.ids['class_a']}/grid").get_data(as_text=True)
    assert "Progression de la classe Groupe A" in page and "Progression: " not in page
