"""Teaching guides (``for_facilitators``): hidden from learners and guests, shown to staff with a badge."""

from __future__ import annotations

import textwrap

import pytest
from passerelle.content import build_pack
from passerelle.server.db import get_db
from passerelle.server.learning import lessons
from passerelle.server.packs import catalogue

PACK = "guides-fr"
BADGE = "For facilitators"


def write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


def make_pack(folder, pack_id: str = PACK, whole: bool = False):
    write(folder / "pack.yaml", f"""
        id: {pack_id}
        version: 1
        title: Atelier courriel {pack_id}
        language: fr
        license: CC-BY-SA-4.0
        publisher: Tests
        {"for_facilitators: true" if whole else ""}
        """)
    write(folder / "01-mail" / "01-lesson.md", """
        ---
        title: Écrire un courriel
        ---
        Un courriel commence par une formule de politesse.
        """)
    write(folder / "01-mail" / "02-guide.md", """
        ---
        title: Guide de l'animateur
        for_facilitators: true
        ---
        Conseils d'animation : commencez par la zanzibarite des participants.
        """)
    write(folder / "01-mail" / "03-notes" / "_topic.yaml", """
        title: Notes pour animer
        for_facilitators: true
        """)
    write(folder / "01-mail" / "03-notes" / "01-plan.md", """
        ---
        title: Plan de séance
        ---
        Le plan de la séance, minute par minute.
        """)
    return folder


@pytest.fixture
def guides(app, tmp_path):
    built = build_pack(make_pack(tmp_path / "src"), tmp_path / "guides.zip",
                       created="2026-11-01T00:00:00Z")
    app.extensions["passerelle.library"].import_pack(built.path)
    return app


def test_the_flag_is_in_the_pack_and_a_whole_pack_flag_is_on_its_root(tmp_path):
    built = build_pack(make_pack(tmp_path / "src", "all-guides", whole=True), tmp_path / "p.zip",
                       created="2026-11-01T00:00:00Z")
    nodes = {n["id"]: n for n in built.manifest["nodes"]}
    assert nodes["root"]["for_facilitators"] is True
    assert nodes["mail/guide"]["for_facilitators"] is True and "for_facilitators" not in nodes["mail/lesson"]


def test_under_a_flagged_topic_is_a_guide_too(guides):
    with guides.app_context():
        db = get_db()
        found = catalogue.staff_only_keys(db, [(PACK, "mail/lesson"), (PACK, "mail/guide"),
                                               (PACK, "mail/notes"), (PACK, "mail/notes/plan")])
        assert found == {(PACK, "mail/guide"), (PACK, "mail/notes"), (PACK, "mail/notes/plan")}
        assert catalogue.staff_only(db, PACK, catalogue.node(db, PACK, "mail/notes/plan"))


@pytest.mark.parametrize("who", ["amina", None])
def test_learners_and_guests_never_see_a_guide(guides, as_user, who):
    client = as_user(who)
    topic = client.get(f"/learn/{PACK}/mail").get_data(as_text=True)
    assert "Écrire un courriel" in topic
    assert "Guide de l" not in topic and "Notes pour animer" not in topic and BADGE not in topic
    for node in ("mail/guide", "mail/notes", "mail/notes/plan"):
        assert client.get(f"/learn/{PACK}/{node}").status_code == 404
    found = client.get("/search?q=zanzibarite").get_data(as_text=True)
    assert "Guide de l" not in found
    api = client.get("/api/v1/search?q=zanzibarite").get_json()
    assert api["total"] == 0 and api["hits"] == []
    assert "Guide" not in str(client.get("/api/v1/search/suggest?q=Guid").get_json())


@pytest.mark.parametrize("who", ["fatou", "cora"])
def test_staff_see_guides_with_the_badge(guides, as_user, who):
    client = as_user(who)
    topic = client.get(f"/learn/{PACK}/mail").get_data(as_text=True)
    assert "Guide de l" in topic and "Notes pour animer" in topic and BADGE in topic
    page = client.get(f"/learn/{PACK}/mail/notes/plan").get_data(as_text=True)
    assert "Plan de séance" in page and BADGE in page
    found = client.get("/search?q=zanzibarite").get_data(as_text=True)
    assert "Guide de l" in found and BADGE in found
    builder = client.get("/manage/lessons/new").get_data(as_text=True)
    assert "Guide de l" in builder and BADGE in builder


def test_a_guide_in_a_lesson_stays_with_staff(guides, box):
    with guides.app_context():
        db = get_db()
        items = [{"pack_id": PACK, "node_id": "mail/lesson"}, {"pack_id": PACK, "node_id": "mail/guide"}]
        lesson = lessons.create_lesson(db, "Courriel", items, box.ids["fatou"])
        lessons.assign(db, lesson, box.ids["class_a"], box.ids["fatou"])
        shown = [i["node_id"] for a in lessons.assigned_to(db, box.ids["amina"]) for i in a["items"]]
        assert shown == ["mail/lesson"]


def test_a_pack_for_facilitators_is_not_on_the_learners_shelf(app, tmp_path, as_user):
    built = build_pack(make_pack(tmp_path / "src", "all-guides", whole=True), tmp_path / "p.zip",
                       created="2026-11-01T00:00:00Z")
    app.extensions["passerelle.library"].import_pack(built.path)
    learner = as_user("amina")
    assert "Atelier courriel all-guides" not in learner.get("/").get_data(as_text=True)
    assert learner.get("/learn/all-guides").status_code == 404
    assert learner.get("/learn/all-guides/mail/lesson").status_code == 404
    staff = as_user("fatou").get("/").get_data(as_text=True)
    assert "Atelier courriel all-guides" in staff and BADGE in staff
