"""Icons drawn as SVG (no emoji font needed), labels for every stored id, in the page's language."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from passerelle.kiosk import labels
from passerelle.server.people import accounts

SPRITE = Path(__file__).resolve().parents[2] / "kiosk" / "static" / "icons.svg"
# Emoji and pictographic symbols a tablet without an emoji font shows as boxes.
EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\uFE0F]")


def symbols() -> set[str]:
    root = ET.parse(SPRITE).getroot()
    return {s.get("id") for s in root.iter("{http://www.w3.org/2000/svg}symbol")}


def test_every_icon_a_page_asks_for_is_drawn():
    drawn = symbols()
    assert labels.icon_names() <= drawn, labels.icon_names() - drawn
    # Every stored id has its label: nothing reaches a page as a bare English id.
    assert set(labels.LABELS["avatar"]) == set(accounts.AVATARS)
    assert set(labels.LABELS["picture"]) == set(accounts.PICTURES)
    assert set(labels.LABELS["role"]) == set(accounts.ROLES)
    assert set(labels.LABELS["signin_mode"]) == set(accounts.SIGNIN_MODES)
    assert set(labels.LABELS["profile_field"]) == set(accounts.PROFILE_FIELDS)
    for field, values in (("age_band", accounts.AGE_BANDS), ("gender", accounts.GENDERS),
                          ("employment", accounts.EMPLOYMENT), ("newcomer", ("yes", "no"))):
        assert set(labels.LABELS[field]) == set(values), field
    # Small enough to be one cached request for every page.
    assert SPRITE.stat().st_size < 20_000


def test_pages_show_icons_not_emoji(installed, as_user, box):
    amina, fatou = as_user("amina"), as_user("fatou")
    pages = {path: amina.get(path) for path in (
        "/", "/learn/demo-fr/basics", "/learn/demo-fr/basics/welcome", "/search?q=quiz",
        "/practice/demo-fr/basics/quiz")}
    pages.update({path: fatou.get(path) for path in (
        f"/manage/classes/{box.ids['class_a']}", f"/manage/sessions/{box.ids['session_a']}",
        f"/manage/learners/{box.ids['amina']}", f"/manage/classes/{box.ids['class_a']}/grid",
        "/manage/reports")})
    pages[f"/signin/class/{box.ids['class_a']}"] = as_user(None).get(f"/signin/class/{box.ids['class_a']}")
    for path, response in pages.items():
        assert response.status_code == 200, path
        html = response.get_data(as_text=True)
        assert not EMOJI.findall(html), (path, EMOJI.findall(html))
    home = pages["/"].get_data(as_text=True)
    # The sprite, fingerprinted like every static file; the search link's magnifier is decoration.
    sprite = re.search(r'xlink:href="(/static/[0-9a-f]{10}/icons\.svg)#search"', home).group(1)
    answer = as_user(None).get(sprite)
    assert answer.status_code == 200 and answer.mimetype == "image/svg+xml"
    assert "immutable" in answer.headers["Cache-Control"]
    topic = pages["/learn/demo-fr/basics"].get_data(as_text=True)
    assert f'<svg class="icon" aria-hidden="true"><use xlink:href="{sprite}#video">' in topic


def test_avatars_and_pictures_have_names_in_the_pages_language(fresh_client, fresh_app):
    with fresh_app.app_context():
        from passerelle.server.db import get_db

        db = get_db()
        accounts.setup(db, org_name="Bibliothèque", languages=["fr", "en"], signin_mode="picture",
                       profile_fields={"employment": "funders"}, display_name="Coord",
                       username="coord", password="a long enough password")
        learner = accounts.create_user(db, role="learner", display_name="Nour",
                                       picture=["cat", "sun", "boat"], avatar="owl")
    page = fresh_client.get(f"/signin/learner/{learner}").get_data(as_text=True)
    # A picture password is chosen by its picture; its name is what a screen reader says.
    assert page.count('role="img" aria-label="Sun"') == 3
    assert re.search(r'<input type="radio" name="picture_0" value="sun" required>'
                     r'<svg class="icon" role="img" aria-label="Sun"><use xlink:href="[^"]+#sun">', page)
    assert 'value="sun"' in page and ">sun<" not in page  # the stored id is never the text
    # The people form: avatars with names, pictures and profile answers as words.
    from tests.conftest import csrf_token

    fresh_client.post("/signin/staff", data={"csrf_token": csrf_token(fresh_client),
                                             "username": "coord", "password": "a long enough password"})
    form = fresh_client.get("/manage/people").get_data(as_text=True)
    assert 'role="img" aria-label="Penguin"' in form
    assert '<option value="boat">Boat</option>' in form
    assert '<option value="job-seeker">Looking for work</option>' in form
    assert re.search(r"<option value=\"coordinator\"\s*>Coordinator</option>", form)
