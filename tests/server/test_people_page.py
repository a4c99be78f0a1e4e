"""The people page with many people: search, filters, pages, actions on several at once,
and the list downloaded as a file the import reads back."""

import csv
import io
import re

import pytest

from tests.conftest import csrf_token


@pytest.fixture(params=["sqlite", "postgresql"])
def box(request, box_template, tmp_path):
    """The people page of a box (SQLite) and of a programme's hub (PostgreSQL): search and
    pages run the same SQL, folded names included."""
    import shutil

    from tests.conftest import Box, postgresql_box

    if request.param == "postgresql":
        return postgresql_box(request, tmp_path)
    template, ids = box_template
    shutil.copytree(template, tmp_path / "box")
    return Box(tmp_path / "box", ids)


def post(client, path, data):
    return client.post(path, data={"csrf_token": csrf_token(client), **data})


def add_learners(app, names, class_uuid=None):
    from passerelle.server import records
    from passerelle.server.db import get_db
    from passerelle.server.people import accounts

    made = []
    with app.app_context():
        db = get_db()
        # Written directly (no PIN to hash): the test is about the list, not sign-in.
        with records.write_tx(db):
            for name in names:
                uid = accounts.new_uuid()
                records.put(db, "user", uid, {"role": "learner", "display_name": name})
                if class_uuid:
                    accounts.add_member(db, class_uuid, uid)
                made.append(uid)
    return made


def names_on(html):
    return re.findall(r'<td class="who">.*?<bdi>(.*?)</bdi>', html)


def test_search_is_folded_and_filters_by_role_and_class(app, as_user, box):
    add_learners(app, ["Hélène Dubois", "HELENE Martin", "Zoë", "محمد"])
    cora = as_user("cora")
    html = cora.get("/manage/people?q=helene").get_data(as_text=True)
    assert sorted(names_on(html)) == ["HELENE Martin", "Hélène Dubois"]
    assert "2 people" in html
    assert names_on(cora.get("/manage/people?q=محمد").get_data(as_text=True)) == ["محمد"]
    # Usernames are searched too.
    assert names_on(cora.get("/manage/people?q=fatou").get_data(as_text=True)) == ["Fatou"]
    html = cora.get("/manage/people?role=facilitator").get_data(as_text=True)
    assert names_on(html) == ["Farid", "Fatou"]
    assert "Learner (7)" in html and "Facilitator (2)" in html and "Coordinator (1)" in html
    html = cora.get(f"/manage/people?class={box.ids['class_a']}").get_data(as_text=True)
    assert names_on(html) == ["Amina", "Bart", "Fatou"]
    html = cora.get("/manage/people?class=none").get_data(as_text=True)
    assert set(names_on(html)) == {"HELENE Martin", "Hélène Dubois", "Zoë", "محمد"}
    assert "Nobody matches this search." in cora.get("/manage/people?q=nobody-at-all").get_data(
        as_text=True)


def test_pages_go_forward_and_back_in_name_order(app, box):
    from passerelle.server.db import get_db
    from passerelle.server.people import directory

    names = [f"Learner {i:03d}" for i in range(120)]
    add_learners(app, names)
    with app.app_context():
        db = get_db()
        first = directory.find(db, text="learner ", limit=50)
        assert first.total == 120 and first.previous_before is None
        assert [p["display_name"] for p in first.people] == names[:50]
        second = directory.find(db, text="learner ", after=first.next_after, limit=50)
        assert [p["display_name"] for p in second.people] == names[50:100]
        third = directory.find(db, text="learner ", after=second.next_after, limit=50)
        assert [p["display_name"] for p in third.people] == names[100:]
        assert third.next_after is None and third.previous_before
        back = directory.find(db, text="learner ", before=third.previous_before, limit=50)
        assert [p["display_name"] for p in back.people] == names[50:100]
        assert back.next_after and back.previous_before
        back = directory.find(db, text="learner ", before=back.previous_before, limit=50)
        assert [p["display_name"] for p in back.people] == names[:50]
        assert back.previous_before is None


def test_the_page_links_to_the_next_page_keeping_the_search(app, as_user, box):
    add_learners(app, [f"Élève {i:03d}" for i in range(60)])
    cora = as_user("cora")
    html = cora.get("/manage/people?q=eleve").get_data(as_text=True)
    assert len(names_on(html)) == 50 and "60 people" in html
    link = re.search(r'href="([^"]+)">Next page', html).group(1).replace("&amp;", "&")
    assert "q=eleve" in link
    html = cora.get(link).get_data(as_text=True)
    assert names_on(html) == [f"Élève {i:03d}" for i in range(50, 60)]
    assert "Previous page" in html and "Next page" not in html


def test_add_and_move_several_people_to_a_class(app, as_user, box):
    a, b = add_learners(app, ["Nour", "Yara"], box.ids["class_b"])
    cora = as_user("cora")
    response = post(cora, "/manage/people/chosen", {"action": "add", "people": [a, b],
                                                    "class_uuid": box.ids["class_a"],
                                                    "back": "/manage/people?q=y"})
    assert response.headers["Location"].endswith("/manage/people?q=y")
    html = cora.get(f"/manage/people?class={box.ids['class_a']}").get_data(as_text=True)
    assert {"Nour", "Yara"} <= set(names_on(html))
    assert "<bdi>Groupe A</bdi>, <bdi>Groupe B</bdi>" in html
    post(cora, "/manage/people/chosen", {"action": "move", "people": [a],
                                         "class_uuid": box.ids["class_a"]})
    html = cora.get(f"/manage/people?class={box.ids['class_b']}").get_data(as_text=True)
    assert "Nour" not in names_on(html) and "Yara" in names_on(html)
    # Nothing ticked, or no class chosen: said, nothing done.
    response = post(cora, "/manage/people/chosen", {"action": "add"})
    assert "Tick at least one person first." in cora.get(response.headers["Location"]).get_data(
        as_text=True)
    response = post(cora, "/manage/people/chosen", {"action": "add", "people": [a]})
    assert "Choose the class to put them in." in cora.get(response.headers["Location"]).get_data(
        as_text=True)


def test_removing_several_asks_first_then_puts_them_in_the_bin(app, as_user, box):
    a, b = add_learners(app, ["Nour", "Yara"])
    cora = as_user("cora")
    page = post(cora, "/manage/people/chosen", {"action": "remove", "people": [a, b, box.ids["cora"]]})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Remove 3 people?" in html
    assert "Nour, Yara" in html and "You are among them: you will not be removed." in html
    assert "the bin on the People page puts each of them back" in html
    assert names_on(cora.get("/manage/people?q=nour").get_data(as_text=True)) == ["Nour"]
    hidden = dict.fromkeys(re.findall(r'name="people" value="([^"]+)"', html))
    response = post(cora, "/manage/people/chosen", {"action": "remove", "confirm": "1",
                                                    "people": list(hidden)})
    html = cora.get(response.headers["Location"]).get_data(as_text=True)
    assert "2 people were removed." in html
    people = cora.get("/manage/people").get_data(as_text=True)
    assert "Put Nour back" in people and "Put Yara back" in people
    assert "Nour" not in names_on(people) and "Cora Coordinator" in names_on(people)


def test_new_pins_are_shown_once_and_work(app, as_user, box):
    cora = as_user("cora")
    chosen = [box.ids["amina"], box.ids["bart"], box.ids["fatou"]]
    page = post(cora, "/manage/people/chosen", {"action": "reset", "people": chosen})
    html = page.get_data(as_text=True)
    assert "New codes for 3 people?" in html and "Their current codes stop working" in html
    assert "Facilitators and coordinators are left as they are" in html
    page = post(cora, "/manage/people/chosen", {"action": "reset", "people": chosen, "confirm": "1"})
    assert page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    pins = dict(re.findall(r'<bdi>(\w+)</bdi></td>\s*<td class="code"><span class="pin-shown" dir="ltr">(\d{4})<', html))
    assert set(pins) == {"Amina", "Bart"} and "Left as they were" in html and "Fatou" in html
    # The old PIN no longer works; the new one does.
    learner = app.test_client()
    token = csrf_token(learner)
    assert learner.post(f"/signin/learner/{box.ids['amina']}",
                        data={"csrf_token": token, "secret": "1234"}).status_code == 401
    assert learner.post(f"/signin/learner/{box.ids['amina']}",
                        data={"csrf_token": token, "secret": pins["Amina"]}).status_code == 302


def test_export_of_the_filtered_list_imports_back_as_updates(app, as_user, box):
    cora = as_user("cora")
    response = cora.get(f"/manage/people/export.csv?class={box.ids['class_a']}")
    assert response.headers["Content-Disposition"] == 'attachment; filename="people.csv"'
    text = response.get_data(as_text=True)
    assert "Amina" in text and "Fatou" in text and "Chloe" not in text
    assert "argon2" not in text and "1234" not in text
    # Imported again as it is: nothing to do.
    token = csrf_token(cora)
    page = cora.post("/manage/people/import", content_type="multipart/form-data",
                     data={"csrf_token": token, "roster": (io.BytesIO(text.encode()), "p.csv")})
    html = page.get_data(as_text=True)
    assert "Will add 0, will update 0, unchanged 3." in html
    assert "there is nothing to import" in html
    # Edited in a spreadsheet (two new names), plus a new person (with a PIN column added).
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    for row in rows[1:]:
        row[1] = {"Amina": "Amina B.", "Bart": "Bartholomeus"}.get(row[1], row[1])
    nadia = dict.fromkeys(header, "") | {"display_name": "Nadia", "class": "Groupe A"}
    rows.append([nadia[h] for h in header])

    def as_file(rows):
        out = io.StringIO()
        csv.writer(out).writerows(rows)
        return out.getvalue()

    page = cora.post("/manage/people/import", content_type="multipart/form-data",
                     data={"csrf_token": token, "roster": (io.BytesIO(as_file(rows).encode()), "p.csv")})
    html = page.get_data(as_text=True)
    assert "Will add 1, will update 2, unchanged 1." in html
    assert "Update Amina" in html and "No change" in html and "New person" in html
    rows = [[*r, "pin" if i == 0 else ("4321" if r[1] == "Nadia" else "")]
            for i, r in enumerate(rows)]
    edited = as_file(rows)
    page = cora.post("/manage/people/import", content_type="multipart/form-data",
                     data={"csrf_token": token, "roster": (io.BytesIO(edited.encode()), "p.csv")})
    assert "Import these 3 people" in page.get_data(as_text=True)
    response = cora.post("/manage/people/import", data={"csrf_token": token, "text": edited,
                                                        "confirm": "1"})
    assert "1 people were added and 2 updated." in cora.get(response.headers["Location"]).get_data(
        as_text=True)
    html = cora.get(f"/manage/people?class={box.ids['class_a']}").get_data(as_text=True)
    assert names_on(html) == ["Amina B.", "Bartholomeus", "Fatou", "Nadia"]
    # Updated, not duplicated: the same people (and Amina keeps her PIN).
    assert "Amina" not in names_on(cora.get("/manage/people?q=amina").get_data(as_text=True))[1:]
    learner = app.test_client()
    assert learner.post(f"/signin/learner/{box.ids['amina']}", data={
        "csrf_token": csrf_token(learner), "secret": "1234"}).status_code == 302


def test_new_pictures_when_learners_sign_in_with_pictures(app, box):
    from passerelle.server.db import get_db
    from passerelle.server.people import accounts, directory

    with app.app_context():
        db = get_db()
        accounts.update_organisation(db, signin_mode="picture")
        done, skipped = directory.reset_secrets(db, [box.ids["chloe"], box.ids["cora"]])
        assert [d["person"]["display_name"] for d in done] == ["Chloe"]
        assert [p["display_name"] for p in skipped] == ["Cora Coordinator"]
        pictures = done[0]["secret"]
        assert len(pictures) == 3 and set(pictures) <= set(accounts.PICTURES)
        assert accounts.authenticate_learner(db, box.ids["chloe"], pictures, "test")


def test_the_page_of_new_pictures_names_them(app, as_user, box):
    from passerelle.server.db import get_db
    from passerelle.server.people import accounts

    with app.app_context():
        accounts.update_organisation(get_db(), signin_mode="picture")
    cora = as_user("cora")
    html = post(cora, "/manage/people/chosen", {"action": "reset", "people": [box.ids["bart"]],
                                                "confirm": "1"}).get_data(as_text=True)
    assert "Pictures, in order" in html
    assert len(re.findall(r'<li><svg class="icon" role="img"', html)) == 3
