"""Facilitators' own material goes into the box's local pack, searchable and exportable."""

import io
import sqlite3
from pathlib import Path

from tests.conftest import csrf_token


def local_pack(app):
    db = sqlite3.connect(app.config["DB_PATH"])
    return db.execute("SELECT id, version, node_count FROM content_packs WHERE id LIKE 'local-%'"
                      ).fetchone()


def test_an_article_a_file_and_a_quiz_become_a_local_pack(as_user, app):
    fatou = as_user("fatou")
    token = csrf_token(fatou)
    response = fatou.post("/manage/material/article", data={
        "csrf_token": token, "title": "Le Wi-Fi de la bibliothèque",
        "body": "Le mot de passe du **Wi-Fi** est affiché à l'accueil."})
    assert response.status_code == 302
    pack_id, version, _ = local_pack(app)
    assert version == 1
    page = fatou.get("/manage/material").get_data(as_text=True)
    assert "Le Wi-Fi de la bibliothèque" in page

    pdf = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    fatou.post("/manage/material/file", content_type="multipart/form-data", data={
        "csrf_token": token, "title": "Horaires", "file": (io.BytesIO(pdf), "horaires.pdf")})
    fatou.post("/manage/material/quiz", data={
        "csrf_token": token, "title": "Quiz Wi-Fi", "q0_prompt": "Où est le mot de passe ?",
        "q0_choice0": "À l'accueil", "q0_choice1": "Sur internet", "q0_answer": "0"})
    pack_id, version, count = local_pack(app)
    assert version == 3 and count == 5  # root, topic, article, document, exercise
    # Learners find it like any other content, and it keeps its ids across versions.
    amina = as_user("amina")
    hits = amina.get("/api/v1/search?q=wifi bibliotheque").get_json()["hits"]
    assert hits and hits[0]["pack_id"] == pack_id
    article = amina.get(f"/learn/{pack_id}/{hits[0]['node_id']}").get_data(as_text=True)
    assert "<strong>Wi-Fi</strong>" in article


def test_bad_material_is_refused_and_nothing_changes(as_user, app):
    fatou = as_user("fatou")
    token = csrf_token(fatou)
    response = fatou.post("/manage/material/file", content_type="multipart/form-data", data={
        "csrf_token": token, "title": "Virus", "file": (io.BytesIO(b"MZ"), "setup.exe")})
    assert response.status_code == 400
    assert "File: one of .jpeg" in response.get_data(as_text=True)
    response = fatou.post("/manage/material/quiz", data={
        "csrf_token": token, "title": "Vide", "q0_prompt": "Une question sans réponses"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    # The problem is named as the form names it, not by the field's internal name.
    assert "Question 1: a question, at least two answers, and which one is right" in page
    assert "questions[0]" not in page
    assert local_pack(app) is None


def test_learners_cannot_add_material(as_user):
    amina = as_user("amina")
    response = amina.post("/manage/material/article", data={
        "csrf_token": csrf_token(amina), "title": "x", "body": "y"})
    assert response.status_code == 403


def test_the_local_pack_exports_and_imports_on_another_box(as_user, app, tmp_path, runner):
    fatou, cora = as_user("fatou"), as_user("cora")
    fatou.post("/manage/material/article", data={"csrf_token": csrf_token(fatou), "title": "Notre atelier",
                                                 "body": "Rendez-vous le mardi."})
    pack_id = local_pack(app)[0]
    response = cora.get(f"/manage/content/{pack_id}/export.zip")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    exported = tmp_path / "local.zip"
    exported.write_bytes(response.data)
    other = runner.__class__(tmp_path / "other-box")
    result = other("content", "import", str(exported))
    assert result.exit_code == 0 and f"{pack_id} v1: installed" in result.stdout
    assert as_user("fatou").get(f"/manage/content/{pack_id}/export.zip").status_code == 403


def test_a_quiz_from_questions_of_installed_exercises(as_user, app):
    fatou = as_user("fatou")
    page = fatou.get("/manage/material/quiz-from-exercises").get_data(as_text=True)
    assert "Combien de doigts" in page
    response = fatou.post("/manage/material/quiz-from-exercises", data={
        "csrf_token": csrf_token(fatou), "title": "Révision", "shuffle": "1",
        "question": ["demo-fr/basics/quiz#q2", "demo-fr/basics/quiz#q1"]})
    assert response.status_code == 302
    db = sqlite3.connect(app.config["DB_PATH"])
    import json

    data = json.loads(db.execute("SELECT data FROM content_nodes WHERE pack_id LIKE 'local-%'"
                                 " AND kind = 'exercise'").fetchone()[0])
    exercise = data["exercise"]
    assert exercise["randomize"] is True
    assert [q["type"] for q in exercise["questions"]] == ["generated", "single_choice"]
    player = as_user("amina").get(f"/practice/{local_pack(app)[0]}/{data['id']}")
    assert player.status_code == 200


def material_folder(app) -> Path:
    from passerelle.server.packs import authoring

    return Path(app.config["HOME"].root) / "authoring" / local_pack(app)[0] / authoring.TOPIC


def node_titles(app) -> list[str]:
    db = sqlite3.connect(app.config["DB_PATH"])
    return [r[0] for r in db.execute("SELECT title FROM content_nodes WHERE pack_id LIKE 'local-%'"
                                     " AND kind NOT IN ('topic') ORDER BY position")]


def test_titles_with_dashes_keep_the_material_page_working(as_user, app):
    fatou = as_user("fatou")
    token = csrf_token(fatou)
    titles = ["---", "Règles : --- à lire", "Avant --- après", "a\n---\nb"]
    for title in titles:
        response = fatou.post("/manage/material/article", data={
            "csrf_token": token, "title": title, "body": "Du texte.\n\n---\n\nEt encore."})
        assert response.status_code == 302
    for who in ("fatou", "farid", "cora"):
        page = as_user(who).get("/manage/material")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        for title in ("---", "Règles : --- à lire", "Avant --- après", "a --- b"):
            assert f">{title}</a>" in html, title
    assert node_titles(app) == ["---", "Règles : --- à lire", "Avant --- après", "a --- b"]


def test_a_file_broken_by_hand_does_not_take_the_page_away(as_user, app):
    fatou = as_user("fatou")
    fatou.post("/manage/material/article", data={"csrf_token": csrf_token(fatou), "title": "Bon",
                                                 "body": "Texte."})
    folder = material_folder(app)
    (folder / "002-casse.md").write_text("---\ntitle: [unclosed\n---\nText\n", encoding="utf-8")
    (folder / "003-vide.yaml").write_text("- a list, not a mapping\n", encoding="utf-8")
    page = as_user("farid").get("/manage/material")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert ">Bon</a>" in html and "002-casse" in html and "003-vide" in html


def test_an_article_whose_image_is_missing_is_refused_alone(as_user, app):
    fatou, farid = as_user("fatou"), as_user("farid")
    response = fatou.post("/manage/material/article", data={
        "csrf_token": csrf_token(fatou), "title": "Le plan", "body": "Voici : ![plan](img/plan.png)"})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "It could not be published" in html and "does not exist" in html
    assert "![plan](img/plan.png)" in html  # the text comes back, nothing is lost
    # Nothing of it stays behind to block the next publication, by anyone.
    response = farid.post("/manage/material/article", data={
        "csrf_token": csrf_token(farid), "title": "Horaires", "body": "Le mardi."})
    assert response.status_code == 302
    assert node_titles(app) == ["Horaires"]
    page = farid.get("/manage/material").get_data(as_text=True)
    assert "Le plan" not in page and "could not be published" not in page


def test_an_item_broken_earlier_is_set_aside_and_can_be_removed(as_user, app):
    fatou, farid = as_user("fatou"), as_user("farid")
    fatou.post("/manage/material/article", data={"csrf_token": csrf_token(fatou), "title": "Premier",
                                                 "body": "Un."})
    # Left in the folder by an older version of the box, it used to fail every publication.
    (material_folder(app) / "002-plan.md").write_text(
        "---\nid: material/old\ntitle: Le plan\n---\n![plan](img/plan.png)\n", encoding="utf-8")
    token = csrf_token(farid)
    response = farid.post("/manage/material/article", data={
        "csrf_token": token, "title": "Second", "body": "Deux."}, follow_redirects=True)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Set aside, not published: Le plan" in html and "The article was added." in html
    assert node_titles(app) == ["Premier", "Second"]
    # Listed with what is wrong, and removable from the page.
    assert "It could not be published: image &#39;img/plan.png&#39; does not exist" in html
    assert 'name="item" value="002-plan"' in html
    response = farid.post("/manage/material/remove", data={"csrf_token": token, "item": "002-plan"},
                          follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "“Le plan” was removed." in html and "could not be published" not in html
    assert not list(material_folder(app).parent.rglob("002-plan*"))
    # A published item is removed the same way, and the pack is published without it.
    response = farid.post("/manage/material/remove", data={"csrf_token": token, "item": "001-premier"})
    assert response.status_code == 302
    assert node_titles(app) == ["Second"]
    # Only items the page lists: never a path.
    for item in ("../../pack", "001-premier", "/etc/passwd", ""):
        assert farid.post("/manage/material/remove", data={"csrf_token": token, "item": item}
                          ).status_code == 404
    assert as_user("amina").post("/manage/material/remove", data={
        "csrf_token": token, "item": "003-second"}).status_code in (400, 403)
