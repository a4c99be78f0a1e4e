"""The SVG icons in a real browser: drawn (the sprite loads under the box's CSP), named for screen
readers in the page's language, and a picture password signed in with them."""

from __future__ import annotations

import pytest
from passerelle.server.db import get_db
from passerelle.server.people import accounts

from tests.browser.test_accessibility import violations
from tests.conftest import PASSWORDS

pytestmark = pytest.mark.browser


@pytest.fixture
def picture_box(app, box, server_factory):
    """The box, its learners signing in with three pictures; Amina's are cat, sun, boat."""
    with app.app_context():
        db = get_db()
        accounts.update_organisation(db, signin_mode="picture")
        accounts.update_user(db, box.ids["amina"], picture=["cat", "sun", "boat"])
    return server_factory()


def drawn(page, selector: str) -> int:
    """How many icons matching ``selector`` have a shape on screen (their symbol was found)."""
    return page.evaluate("""s => [...document.querySelectorAll(s)].filter(svg => {
        const use = svg.querySelector('use'); const box = use && use.getBBox();
        return box && box.width > 0 && box.height > 0 && svg.getBoundingClientRect().width > 0;
    }).length""", selector)


def test_a_picture_password_with_drawn_and_named_pictures(picture_box, page_factory, box):
    page = page_factory(picture_box.url, locale="en-GB", bypass_csp=False)
    page.goto(f"/signin/learner/{box.ids['amina']}")
    page.wait_for_load_state("load")
    page.wait_for_function("() => document.querySelector('.picture-choice use').getBBox().width > 0")
    assert drawn(page, ".picture-choice svg") == 3 * len(accounts.PICTURES)
    # Each picture is a radio button named by its picture, in each of the three rows.
    for i, name in enumerate(("Cat", "Sun", "Boat")):
        page.locator("fieldset.pictures").nth(i).get_by_role("radio", name=name).check()
    page.locator("form.signin-learner button[type=submit]").click()
    page.wait_for_url("**/")
    assert page.locator(".signout .who").inner_text() == "Amina"
    assert drawn(page, ".search-link svg") == 2  # Search and My page, both drawn


def test_icon_pages_pass_axe(picture_box, page_factory, box):
    page = page_factory(picture_box.url, locale="en-GB", bypass_csp=True)  # axe is injected inline
    found = []
    for path in (f"/signin/class/{box.ids['class_a']}", f"/signin/learner/{box.ids['amina']}"):
        page.goto(path)
        page.wait_for_load_state("load")
        found += [f"{path}: {v}" for v in violations(page)]
    page.goto("/signin/staff")
    page.locator("input[name=username]").fill("cora")
    page.locator("input[name=password]").fill(PASSWORDS["cora"])
    page.locator("form.form button[type=submit]").click()
    page.wait_for_url("**/manage")
    for path in ("/manage/people", f"/manage/classes/{box.ids['class_a']}",
                 f"/manage/sessions/{box.ids['session_a']}"):
        page.goto(path)
        page.wait_for_load_state("load")
        found += [f"{path}: {v}" for v in violations(page)]
    assert drawn(page, ".attend svg") == 2  # Amina's and Bart's foxes
    assert not found, "\n".join(found)
