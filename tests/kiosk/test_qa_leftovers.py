"""What a walk through the box in French and Arabic still found: each fixed, each checked here."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest
from babel.messages import pofile
from markupsafe import Markup
from passerelle.content import build_pack, zim
from passerelle.kiosk import perseus_view as pv
from passerelle.server.db import get_db
from passerelle.server.learning import progress

sys.path.insert(0, str(Path(__file__).parents[1]))

from zimfixtures import make_zim  # noqa: E402

TRANSLATIONS = Path(__file__).parents[2] / "kiosk" / "translations"


# --- An English Khan Academy question inside an Arabic channel and interface ------------------

ENGLISH = {"type": "perseus", "prompt": "How much is $3 + 4$? [[\u2603 w1]]",
           "widgets": {"w1": {"type": "radio", "choices": ["Seven", "Twelve"]}}}


def test_a_perseus_question_takes_its_direction_from_its_own_letters():
    # An Arabic channel's untranslated English question: left to right, no language claimed.
    assert pv.text_attrs(ENGLISH, "ar") == Markup(' lang="" dir="ltr"')
    # A French channel's English question: same direction, the channel's language stays.
    assert pv.text_attrs(ENGLISH, "fr") == Markup(' lang="fr" dir="ltr"')
    arabic = {"prompt": "كم يساوي $3 + 4$؟", "widgets": {}}
    assert pv.text_attrs(arabic, "ar") == Markup(' lang="ar" dir="rtl"')
    assert pv.text_attrs(arabic, "en") == Markup(' lang="" dir="rtl"')
    assert pv.text_attrs({"prompt": "$3 + 4 = ?$"}, "ar") == Markup(' lang="ar" dir="rtl"')


def test_the_widgets_own_words_keep_the_interface_direction():
    html = pv.question_html(ENGLISH, None, labels={"choose_one": "اختر إجابة واحدة:",
                                                   "attrs": Markup(' lang="ar" dir="rtl"')})
    assert '<legend lang="ar" dir="rtl">اختر إجابة واحدة:</legend>' in html


def test_the_practice_page_carries_the_question_direction(app, as_user, tmp_path):
    sys.path.insert(0, str(Path(__file__).parents[1] / "content"))
    from kolibri_channel import CHANNEL, hexid, standard
    from passerelle.content import kolibri

    ex, ids = standard(tmp_path / "KOLIBRI_DATA")
    ex.save()
    kolibri.import_channel(app.extensions["passerelle.library"], ex.root, CHANNEL)
    amina = as_user("amina")
    amina.get("/language/ar")
    page = amina.get(f"/practice/kolibri-{CHANNEL}/{hexid('content' + ids['exercise'])}"
                     ).get_data(as_text=True)
    assert '<html lang="ar" dir="rtl">' in page
    assert re.search(r'<div class="prompt" id="prompt" lang="fr" dir="ltr">', page)


# --- "Ray Charles" is not "Ray charge" ---------------------------------------------------------

@pytest.mark.skipif(not zim.AVAILABLE, reason=zim.UNAVAILABLE_REASON)
def test_no_did_you_mean_when_the_encyclopedia_has_the_words_as_typed(app, client, tmp_path):
    src = tmp_path / "src"
    (src / "01-power").mkdir(parents=True)
    (src / "pack.yaml").write_text(textwrap.dedent("""
        id: power-en
        version: 1
        title: Power
        language: en
        license: CC-BY-SA-4.0
        publisher: Tests
        """), encoding="utf-8")
    (src / "01-power" / "01-charge.md").write_text(
        "---\ntitle: Ray charge\n---\nA ray of sun will charge the battery.\n", encoding="utf-8")
    built = build_pack(src, tmp_path / "p.zip", created="2026-11-01T00:00:00Z")
    app.extensions["passerelle.library"].import_pack(built.path)
    lessons_only = client.get("/search?q=Ray+Charles").get_data(as_text=True)
    assert "Did you mean" in lessons_only  # with lessons alone, the correction is all there is
    path = make_zim(tmp_path / "usb" / "wiki.zim", language="eng", articles={
        "Ray_Charles": ("Ray Charles", "<p>Ray Charles was an American singer and pianist.</p>"),
        "Accueil": ("Accueil", '<p><a href="Ray_Charles">Ray Charles</a></p>')})
    app.extensions["passerelle.zims"].add(path)
    page = client.get("/search?q=Ray+Charles").get_data(as_text=True)
    assert "Did you mean" not in page and "Ray charge" not in page
    assert "Ray Charles" in page and "/read/" in page


# --- Free space in the interface's words and digits ----------------------------------------------

def test_free_space_is_a_human_size_in_the_page_language(as_user):
    cora = as_user("cora")
    cora.get("/language/fr")
    page = cora.get("/manage").get_data(as_text=True)
    assert re.search(r"\d+(,\d)?\s[kMGT]?o libres sur \d+(,\d)?\s[kMGT]?o\.", page), page[:2000]
    assert " MB" not in page


# --- French: "d'Amina", never "de Amina" -------------------------------------------------------

def test_no_french_message_puts_a_name_after_de():
    with open(TRANSLATIONS / "fr" / "LC_MESSAGES" / "messages.po", "rb") as f:
        catalogue = pofile.read_po(f)
    wrong = [m.string for m in catalogue if m.id and not m.fuzzy and isinstance(m.string, str)
             and re.search(r"\b[dD]e %\((name|class|learner|person)\)s", m.string)]
    assert wrong == []


def test_a_person_added_reads_well_in_french(as_user):
    cora = as_user("cora")
    cora.get("/language/fr")
    page = cora.get("/manage/people").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    done = cora.post("/manage/people", data={"csrf_token": token, "role": "learner",
                                             "display_name": "Amina Diallo", "pin": "4826"},
                     follow_redirects=True).get_data(as_text=True)
    assert "Compte créé pour Amina Diallo." in done and "de Amina" not in done


# --- Another box's material pack, named -------------------------------------------------------

def test_another_box_s_material_is_named_in_the_report(app, as_user, box):
    with app.app_context():
        progress.record(get_db(), box.ids["amina"], [
            {"event_id": "t-local-1", "pack_id": "local-0a1b2c3d", "node_id": "material/a",
             "type": "progress", "seconds": 600}])
    page = as_user("cora").get("/manage/reports").get_data(as_text=True)
    assert "Material made on another box (local-0a1b2c3d)" in page
    csv = as_user("cora").get("/manage/reports.csv").get_data(as_text=True)
    assert "Material made on another box (local-0a1b2c3d)" in csv


# --- The ZIM reader keeps the article in the address ---------------------------------------------

@pytest.mark.skipif(not zim.AVAILABLE, reason=zim.UNAVAILABLE_REASON)
def test_the_reader_page_and_the_article_know_each_other(app, client, tmp_path):
    path = make_zim(tmp_path / "usb" / "wiki.zim",
                    extra={"logo.png": ("image/png", b"\x89PNG\r\n\x1a\n" + b"0" * 100)})
    uuid = app.extensions["passerelle.zims"].add(path).uuid
    page = client.get(f"/read/{uuid}/Mot_de_passe").get_data(as_text=True)
    assert f'data-entry-prefix="/zim/{uuid}/"' in page and f'data-read-prefix="/read/{uuid}/"' in page
    assert "zimreader.js" in page
    article = client.get(f"/zim/{uuid}/Mot_de_passe").get_data(as_text=True)
    assert article.rstrip().endswith("</script>") and "passerelleZim" in article
    assert "table { display: block" in article
    image = client.get(f"/zim/{uuid}/logo.png")
    assert b"passerelleZim" not in image.data
    # Reloading the address the page moved to opens that article.
    assert 'src="/zim/' + uuid + '/Clavier"' in client.get(f"/read/{uuid}/Clavier").get_data(as_text=True)
