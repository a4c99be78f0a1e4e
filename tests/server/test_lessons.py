"""Lessons assigned to classes and groups, and the grid a facilitator watches."""

import re

from tests.conftest import csrf_token


def make_lesson(client, title="Premiers pas", items=("basics/welcome", "basics/quiz")):
    token = csrf_token(client)
    response = client.post("/manage/lessons", data={
        "csrf_token": token, "title": title, "item": [f"demo-fr/{i}" for i in items]})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    page = client.get("/manage/classes").get_data(as_text=True)
    return token, page


def lesson_uuid(client, box, title="Premiers pas"):
    page = client.get(f"/manage/classes/{box.ids['class_a']}").get_data(as_text=True)
    return re.search(rf'<option value="([0-9a-f-]+)">{title}</option>', page).group(1)


def test_a_lesson_is_built_assigned_and_seen_by_learners(as_user, box):
    fatou, amina, chloe = as_user("fatou"), as_user("amina"), as_user("chloe")
    token, _ = make_lesson(fatou)
    fatou.post(f"/manage/classes/{box.ids['class_a']}/assignments",
               data={"csrf_token": token, "lesson_uuid": lesson_uuid(fatou, box)})
    lessons = amina.get("/api/v1/me/lessons").get_json()["lessons"]
    assert [lesson["title"] for lesson in lessons] == ["Premiers pas"]
    assert [i["node_id"] for i in lessons[0]["items"]] == ["basics/welcome", "basics/quiz"]
    assert chloe.get("/api/v1/me/lessons").get_json()["lessons"] == []  # another class


def test_a_lesson_for_a_group_reaches_only_the_group(as_user, box):
    fatou = as_user("fatou")
    token, _ = make_lesson(fatou)
    fatou.post(f"/manage/classes/{box.ids['class_a']}/groups",
               data={"csrf_token": token, "name": "Débutants", "learner": [box.ids["amina"]]})
    page = fatou.get(f"/manage/classes/{box.ids['class_a']}").get_data(as_text=True)
    group = re.search(r'<option value="([0-9a-f-]+)">Débutants</option>', page).group(1)
    fatou.post(f"/manage/classes/{box.ids['class_a']}/assignments",
               data={"csrf_token": token, "lesson_uuid": lesson_uuid(fatou, box), "group_uuid": group})
    assert len(as_user("amina").get("/api/v1/me/lessons").get_json()["lessons"]) == 1
    assert as_user("bart").get("/api/v1/me/lessons").get_json()["lessons"] == []


def test_the_grid_follows_learners_and_flags_who_needs_help(as_user, box):
    fatou, amina, bart = as_user("fatou"), as_user("amina"), as_user("bart")
    token, _ = make_lesson(fatou)
    fatou.post(f"/manage/classes/{box.ids['class_a']}/assignments",
               data={"csrf_token": token, "lesson_uuid": lesson_uuid(fatou, box)})
    amina.post("/learn/demo-fr/basics/welcome/done", data={"csrf_token": csrf_token(amina)})
    wrong = [{"event_id": f"w{i}", "pack_id": "demo-fr", "node_id": "basics/quiz", "type": "answer",
              "correct": False, "question_id": "q1"} for i in range(3)]
    bart.post("/api/v1/progress", json={"events": wrong}, headers={"X-CSRFToken": csrf_token(bart)})
    grid = fatou.get(f"/api/v1/classes/{box.ids['class_a']}/grid").get_json()
    cells = {learner["display_name"]: grid["cells"][learner["uuid"]] for learner in grid["learners"]}
    assert cells["Amina"] == {"demo-fr/basics/welcome": "completed", "demo-fr/basics/quiz": "not_started"}
    assert cells["Bart"]["demo-fr/basics/quiz"] == "needs_help"
    assert grid["most_missed"][0]["question_id"] == "q1" and grid["most_missed"][0]["wrong"] == 3
    page = fatou.get(f"/manage/classes/{box.ids['class_a']}/grid").get_data(as_text=True)
    assert "Needs help" in page and "Combien de doigts" in page
    assert as_user("farid").get(f"/manage/classes/{box.ids['class_a']}/grid").status_code == 403


def test_closing_an_assignment_removes_it_from_learners(as_user, box):
    fatou = as_user("fatou")
    token, _ = make_lesson(fatou)
    fatou.post(f"/manage/classes/{box.ids['class_a']}/assignments",
               data={"csrf_token": token, "lesson_uuid": lesson_uuid(fatou, box)})
    page = fatou.get(f"/manage/classes/{box.ids['class_a']}").get_data(as_text=True)
    close = re.search(r'action="(/manage/assignments/[0-9a-f-]+/close)"', page).group(1)
    fatou.post(close, data={"csrf_token": token})
    assert as_user("amina").get("/api/v1/me/lessons").get_json()["lessons"] == []


def test_a_lesson_needs_installed_resources(as_user):
    fatou = as_user("fatou")
    response = fatou.post("/manage/lessons", data={"csrf_token": csrf_token(fatou), "title": "X",
                                                   "item": ["demo-fr/nope", "other/thing"]})
    assert response.status_code == 400
    assert "not installed resources" in response.get_data(as_text=True)


def test_a_learners_page_for_their_facilitators_only(as_user, box):
    amina = as_user("amina")
    amina.post("/learn/demo-fr/basics/welcome/done", data={"csrf_token": csrf_token(amina)})
    page = as_user("fatou").get(f"/manage/learners/{box.ids['amina']}").get_data(as_text=True)
    assert "Bienvenue" in page and "Resources completed: 1" in page
    assert as_user("farid").get(f"/manage/learners/{box.ids['amina']}").status_code == 403
    assert as_user("cora").get(f"/manage/learners/{box.ids['amina']}").status_code == 200


def test_open_lessons_come_first_on_the_learners_home(as_user, box):
    fatou = as_user("fatou")
    token, _ = make_lesson(fatou)
    fatou.post(f"/manage/classes/{box.ids['class_a']}/assignments",
               data={"csrf_token": token, "lesson_uuid": lesson_uuid(fatou, box)})
    home = as_user("amina").get("/").get_data(as_text=True)
    assert home.index("Your lessons") < home.index("Learning packs")
    assert home.index("Premiers pas") < home.index("Démo Passerelle")
    assert "Your lessons" not in as_user("chloe").get("/").get_data(as_text=True)


def grid_statements(app, class_uuid):
    """The grid, and every SQL statement SQLite ran to build it."""
    from passerelle.server.db import get_db
    from passerelle.server.learning import lessons

    seen = []
    with app.app_context():
        db = get_db()
        db.conn.set_trace_callback(seen.append)
        grid = lessons.class_grid(db, class_uuid)
        db.conn.set_trace_callback(None)
    return grid, len(seen)


def test_the_grid_asks_as_many_queries_for_a_big_class_as_for_a_small_one(app, box):
    """No query per column, per learner or per answer: titles come in one catalogue read, the
    most missed questions from the learners' summaries."""
    from passerelle.server import records
    from passerelle.server.db import get_db
    from passerelle.server.learning import lessons

    def lesson(items):
        with app.app_context():
            db = get_db()
            uuid = lessons.create_lesson(db, f"{len(items)} items", [
                {"pack_id": "demo-fr", "node_id": i} for i in items], box.ids["fatou"])
            lessons.assign(db, uuid, box.ids["class_a"], box.ids["fatou"])

    def wrong(answers):
        with app.app_context():
            db = get_db()
            for who, question in answers:
                records.event(db, box.ids[who], {
                    "event_id": f"w{wrong.count}", "pack_id": "demo-fr", "node_id": "basics/quiz",
                    "type": "answer", "question_id": question, "correct": False})
                wrong.count += 1

    wrong.count = 0
    lesson(["basics/quiz"])
    wrong([("amina", "q1")])
    small, small_count = grid_statements(app, box.ids["class_a"])
    lesson(["basics/welcome", "basics/clip", "basics/game", "basics/quiz", "basics/guide"])
    wrong([("amina", "q1"), ("bart", "q2"), ("bart", "q1"), ("amina", "q2")])
    big, big_count = grid_statements(app, box.ids["class_a"])
    assert len(small.columns) == 1 and len(small.missed) == 1
    assert len(big.columns) == 5 and len(big.learners) >= 2
    assert [(m["question_id"], m["wrong"]) for m in big.missed] == [("q1", 3), ("q2", 2)]
    assert big.missed[0]["prompt"].startswith("Combien de doigts") and big.missed[0]["exercise"] == "Petit quiz"
    assert big_count == small_count


# --- Lessons after creation -------------------------------------------------------------------

def saved_lesson(client, title="Premiers pas") -> str:
    page = client.get("/manage/lessons").get_data(as_text=True)
    return re.search(rf'href="/manage/lessons/([0-9a-f-]+)/edit">Edit {title}<', page).group(1)


def test_a_saved_lesson_is_edited_reordered_and_renamed(as_user, box):
    fatou = as_user("fatou")
    token, _ = make_lesson(fatou)
    uuid = saved_lesson(fatou)
    fatou.post(f"/manage/classes/{box.ids['class_a']}/assignments",
               data={"csrf_token": token, "lesson_uuid": uuid})
    edit = fatou.get(f"/manage/lessons/{uuid}/edit").get_data(as_text=True)
    assert edit.index("Bienvenue") < edit.index("Petit quiz")
    items = ["demo-fr/basics/welcome", "demo-fr/basics/quiz"]
    # Down with the first, one more added, then saved under a new title.
    moved = fatou.post(f"/manage/lessons/{uuid}/edit", data={
        "csrf_token": token, "title": "Pas à pas", "item": items, "action": "down:0"})
    body = moved.get_data(as_text=True)
    assert body.index('value="demo-fr/basics/quiz"') < body.index('value="demo-fr/basics/welcome"')
    fatou.post(f"/manage/lessons/{uuid}/edit", data={
        "csrf_token": token, "title": "Pas à pas", "item": items[::-1],
        "add": ["demo-fr/basics/clip"], "action": "add"})
    saved = fatou.post(f"/manage/lessons/{uuid}/edit", data={
        "csrf_token": token, "title": "Pas à pas",
        "item": [*items[::-1], "demo-fr/basics/clip"], "action": "remove:1"})
    assert "basics/welcome" not in saved.get_data(as_text=True).split("The library")[0]
    fatou.post(f"/manage/lessons/{uuid}/edit", data={
        "csrf_token": token, "title": "Pas à pas", "item": ["demo-fr/basics/quiz",
                                                            "demo-fr/basics/clip"],
        "action": "save"})
    lessons = as_user("amina").get("/api/v1/me/lessons").get_json()["lessons"]
    assert lessons[0]["title"] == "Pas à pas"  # the assignment follows the lesson
    assert [i["node_id"] for i in lessons[0]["items"]] == ["basics/quiz", "basics/clip"]


def test_the_picker_finds_by_words_and_filters(as_user):
    fatou = as_user("fatou")
    token = csrf_token(fatou)

    def find(**asked):
        page = fatou.post("/manage/lessons/new", data={"csrf_token": token, "title": "T",
                                                       "action": "find", **asked})
        assert page.status_code == 200
        body = page.get_data(as_text=True)
        return body, re.findall(r'name="add" value="([^"]+)"', body)

    body, everything = find()
    assert "details class=\"tree-pack\"" in body and len(everything) >= 5  # the whole tree
    body, found = find(kind="exercise")
    assert found == ["demo-fr/basics/quiz"] and "1 resource found" in body
    _body, found = find(q="doigts")  # words of the texts, through the search index
    assert set(found) == {"demo-fr/basics/quiz", "demo-fr/basics/welcome"}
    _body, found = find(q="doigts", kind="exercise")
    assert found == ["demo-fr/basics/quiz"]
    _body, found = find(q="doigts", kind="video")
    assert found == []
    _body, found = find(pack="demo-fr", language="fr")
    assert set(found) == set(everything)
    # "Show the whole library" forgets the filters.
    body, found = find(kind="exercise", action="clear")
    assert set(found) == set(everything)


def test_a_lesson_for_chosen_learners_reaches_only_them(as_user, box):
    fatou = as_user("fatou")
    token, _ = make_lesson(fatou)
    fatou.post(f"/manage/classes/{box.ids['class_a']}/assignments",
               data={"csrf_token": token, "lesson_uuid": saved_lesson(fatou),
                     "learner": [box.ids["bart"]]})
    assert as_user("amina").get("/api/v1/me/lessons").get_json()["lessons"] == []
    assert len(as_user("bart").get("/api/v1/me/lessons").get_json()["lessons"]) == 1
    page = fatou.get(f"/manage/classes/{box.ids['class_a']}").get_data(as_text=True)
    assert "Premiers pas</strong>" in page and "(Bart)" in page
    refused = fatou.post(f"/manage/classes/{box.ids['class_a']}/assignments", follow_redirects=True,
                         data={"csrf_token": token, "lesson_uuid": saved_lesson(fatou),
                               "learner": [box.ids["chloe"]]})  # not in this class
    assert "Choose a lesson" in refused.get_data(as_text=True)


def test_a_lesson_is_previewed_copied_to_a_group_and_deleted(app, as_user, box):
    fatou = as_user("fatou")
    token, _ = make_lesson(fatou)
    uuid = saved_lesson(fatou)
    preview = fatou.get(f"/manage/lessons/{uuid}/preview").get_data(as_text=True)
    assert 'class="tiles lesson"' in preview
    assert preview.index("Bienvenue") < preview.index("Petit quiz")
    assert "/learn/demo-fr/basics/welcome" in preview

    fatou.post(f"/manage/classes/{box.ids['class_a']}/groups",
               data={"csrf_token": token, "name": "Débutants", "learner": [box.ids["amina"]]})
    form = fatou.get(f"/manage/lessons/{uuid}/copy").get_data(as_text=True)
    assert "Groupe A, group Débutants" in form and "Groupe B" not in form  # not Fatou's
    group = re.search(r'<option value="(group:[^"]+)">Groupe A, group Débutants', form).group(1)
    response = fatou.post(f"/manage/lessons/{uuid}/copy", data={
        "csrf_token": token, "title": "Premiers pas (Débutants)", "to": group})
    assert response.status_code == 302
    assert [x["title"] for x in as_user("amina").get("/api/v1/me/lessons").get_json()["lessons"]] \
        == ["Premiers pas (Débutants)"]
    assert as_user("bart").get("/api/v1/me/lessons").get_json()["lessons"] == []
    # Another class's group is not Fatou's to copy to.
    assert fatou.post(f"/manage/lessons/{uuid}/copy", data={
        "csrf_token": token, "to": f"class:{box.ids['class_b']}"}).status_code == 400

    copy = saved_lesson(fatou, re.escape("Premiers pas (Débutants)"))
    assert "Delete the lesson" in fatou.get(f"/manage/lessons/{copy}/delete").get_data(as_text=True)
    fatou.post(f"/manage/lessons/{copy}/delete", data={"csrf_token": token})
    assert as_user("amina").get("/api/v1/me/lessons").get_json()["lessons"] == []
    page = fatou.get("/manage/lessons").get_data(as_text=True)
    assert "The lesson Premiers pas (Débutants) is deleted." in page
    assert "Edit Premiers pas (Débutants)" not in page and "Edit Premiers pas" in page


def test_the_picker_filters_by_topic(app):
    """Topics at any depth: a topic keeps every resource under it, however deep."""
    from passerelle.kiosk.manage.lessons import flatten, resource_picker

    def leaf(node_id, kind="video", language="fr"):
        return {"pack_id": "p", "node_id": node_id, "kind": kind, "title": node_id.upper(),
                "language": language, "children": []}

    def topic(node_id, children):
        return {**leaf(node_id, "topic"), "children": children}

    tree = [{"pack_id": "p", "title": "P", "language": "fr", "children": [
        topic("t1", [leaf("a"), topic("t2", [leaf("b", "exercise"), leaf("c", language="ar")])]),
        leaf("d")]}]
    known = flatten(tree, {})
    with app.test_request_context():
        picker = resource_picker(tree, known, {})
        assert picker["results"] is None  # no filter: the tree
        assert [(t["key"], t["depth"]) for t in picker["topics"]] == [("p/t1", 0), ("p/t2", 1)]
        assert picker["kinds"] == ["exercise", "video"] and picker["languages"] == ["ar", "fr"]

        def keys(**form):
            return [r["key"] for r in resource_picker(tree, known, form)["results"]]

        assert keys(topic="p/t1") == ["p/a", "p/b", "p/c"]
        assert keys(topic="p/t2", language="ar") == ["p/c"]
        assert keys(topic="p/t2", kind="exercise") == ["p/b"]
        assert keys(kind="video") == ["p/a", "p/c", "p/d"]
        assert keys(pack="p", topic="nowhere") == ["p/a", "p/b", "p/c", "p/d"]  # unknown: ignored
