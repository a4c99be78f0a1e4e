"""Facilitators' own material goes into the box's local pack, searchable and exportable."""

import io
import sqlite3

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
