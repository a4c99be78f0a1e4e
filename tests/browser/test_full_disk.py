"""An exercise answered while the box's disk is full reaches the box once it has room again."""

import pytest

from tests.browser.test_learner_journeys import sign_in_as_amina

pytestmark = pytest.mark.browser

QUEUE = ("() => { const k = Object.keys(localStorage).find(k => k.startsWith('passerelle-queue-'));"
         " return k ? JSON.parse(localStorage.getItem(k)) : []; }")


def test_an_answer_made_on_a_full_box_is_kept_and_sent_later(small_disk, page_factory):
    box_disk = small_disk(8, {"PASSERELLE_DISK_RESERVE_MB": "1", "PASSERELLE_DISK_WARNING_MB": "2"})
    page = page_factory(box_disk.server.url, locale="fr-BE")
    sign_in_as_amina(page)
    page.goto("/practice/demo-fr/basics/quiz")
    box_disk.fill()
    page.get_by_label("Un", exact=True).check()
    with page.expect_navigation() as answered:
        page.locator("button[value=check]").click()
    assert answered.value.status == 507
    # The answer is still on the page, with a sentence saying what happened ...
    assert page.locator("#answer-error").count() == 1
    assert page.get_by_label("Un", exact=True).is_checked()
    # ... and in the tablet's queue, which the box refuses (507) and the tablet keeps.
    page.wait_for_function(f"() => ({QUEUE})().some(e => e.type === 'answer')", timeout=10000)
    assert box_disk.query("SELECT count(*) FROM ops WHERE json_extract(payload, '$.type')"
                          " = 'answer'") == [[0]]
    box_disk.make_room()
    page.evaluate("window.dispatchEvent(new Event('online'))")  # or the next 15-second try
    page.wait_for_function(f"() => ({QUEUE})().length === 0", timeout=20000)
    assert box_disk.query("SELECT count(*) FROM ops WHERE json_extract(payload, '$.type')"
                          " = 'answer'") == [[1]]
    # Pressing "Check" again on the kept page shows the feedback, and counts the answer once.
    page.locator("button[value=check]").click()
    page.locator("#feedback.is-right").wait_for()
    assert box_disk.query("SELECT count(*) FROM ops WHERE json_extract(payload, '$.type')"
                          " = 'answer'") == [[1]]
