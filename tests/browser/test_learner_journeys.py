"""A learner's journeys on a tablet, in Debian's headless Chromium against a real server."""

import json
import re
import sqlite3

import pytest

pytestmark = pytest.mark.browser


def sign_in_as_amina(page):
    page.goto("/signin")
    page.get_by_role("link", name="Groupe A").click()
    page.get_by_role("link", name="Amina").click()
    page.get_by_label(re.compile("4")).fill("1234")  # "Your 4-digit code", in any language
    page.locator("form.signin-learner button[type=submit]").click()
    page.wait_for_url("**/")
    assert page.locator(".signout .who").inner_text() == "Amina"


def events_of(home, node_id):
    db = sqlite3.connect(home / "passerelle.db")
    return [json.loads(p) for (p,) in db.execute(
        "SELECT payload FROM ops WHERE kind = 'event' AND json_extract(payload, '$.node_id') = ?",
        [node_id])]


def test_a_learner_watches_a_video_and_seeks(live_server, page_factory, box):
    page = page_factory(live_server.url, locale="fr-BE")
    ranges = []
    page.on("request", lambda r: ranges.append(r.headers.get("range")) if "/files/" in r.url else None)
    sign_in_as_amina(page)
    page.goto("/learn/demo-fr/basics/clip")
    video = page.locator("video.player")
    video.evaluate("v => new Promise(r => v.readyState >= 1 ? r() : v.addEventListener('loadedmetadata', r))")
    assert 35 < video.evaluate("v => v.duration") < 37
    video.evaluate("v => new Promise(r => { v.addEventListener('seeked', r, {once: true}); v.currentTime = 30; })")
    assert video.evaluate("v => v.currentTime") == pytest.approx(30, abs=0.5)
    assert any(r and r.startswith("bytes=") for r in ranges), "the video is fetched with Range requests"
    assert page.locator("track[srclang=fr]").count() == 1
    # Playing to 90% completes it; the queue sends the event to the box.
    video.evaluate("v => { v.muted = true; v.currentTime = 33.5; return v.play(); }")
    page.wait_for_function("() => !localStorage.getItem(Object.keys(localStorage)[0]) "
                           "|| JSON.parse(localStorage.getItem(Object.keys(localStorage)[0])).length === 0",
                           timeout=15000)
    page.wait_for_timeout(500)
    assert any(e["type"] == "completed" for e in events_of(box.home, "basics/clip"))


def test_an_exercise_done_to_mastery(live_server, page_factory, box):
    page = page_factory(live_server.url, locale="fr-BE")
    sign_in_as_amina(page)
    page.goto("/learn/demo-fr/basics/quiz")  # exercises open the player
    assert "/practice/demo-fr/basics/quiz" in page.url
    for _ in range(6):
        if page.locator(".celebrate").count():
            break
        prompt = page.locator("#prompt").inner_text()
        if page.locator("input[name=answer][type=radio]").count():
            page.get_by_label("Un", exact=True).check()
        else:
            a, b = map(int, re.findall(r"\d+", prompt)[:2])
            page.locator("#answer").fill(str(a + b))
        page.locator("button[value=check]").click()
        # The page's script answers in place: wait for the feedback it shows.
        page.locator("#feedback").wait_for()
        assert page.locator("#feedback.is-right").count() == 1
        if page.locator(".celebrate").count():
            break
        page.locator("button[value=next]").click()
    assert page.locator(".celebrate").count() == 1
    completed = [e for e in events_of(box.home, "basics/quiz") if e["type"] == "completed"]
    assert len(completed) == 1


def test_progress_sent_while_the_box_was_unreachable_arrives_once(live_server, page_factory, box):
    page = page_factory(live_server.url, locale="fr-BE")
    sign_in_as_amina(page)
    # The Wi-Fi drops: every progress request fails.
    page.route("**/api/v1/progress", lambda route: route.abort("internetdisconnected"))
    page.goto("/learn/demo-fr/basics/welcome")
    page.wait_for_timeout(5500)  # read for a while: the end of the article is on screen
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    queued = page.wait_for_function(
        "() => { const k = Object.keys(localStorage).find(k => k.startsWith('passerelle-queue-'));"
        " return k && JSON.parse(localStorage.getItem(k)).length > 0; }", timeout=10000)
    assert queued
    assert not [e for e in events_of(box.home, "basics/welcome") if e["type"] == "completed"]
    # The Wi-Fi comes back; the tablet sends its queue.
    page.unroute("**/api/v1/progress")
    page.evaluate("window.dispatchEvent(new Event('online'))")
    page.wait_for_function(
        "() => { const k = Object.keys(localStorage).find(k => k.startsWith('passerelle-queue-'));"
        " return !k || JSON.parse(localStorage.getItem(k)).length === 0; }", timeout=10000)
    # The answer to one request is lost: the tablet sends the same events again.
    sent = []
    page.route("**/api/v1/progress", lambda route: (sent.append(route.request.post_data), route.continue_()))
    completed = [e for e in events_of(box.home, "basics/welcome") if e["type"] == "completed"]
    assert len(completed) == 1
    again = page.evaluate("""async (event) => {
        const token = document.querySelector('meta[name=csrf-token]').content;
        const r = await fetch('/api/v1/progress', {method: 'POST', headers: {'Content-Type':
          'application/json', 'X-CSRFToken': token}, body: JSON.stringify({events: [event]})});
        return r.json(); }""", {k: v for k, v in completed[0].items()})
    assert again == {"accepted": 0, "duplicates": 1, "refused": []}
    assert len([e for e in events_of(box.home, "basics/welcome") if e["type"] == "completed"]) == 1


def test_progress_survives_a_server_restart(server_factory, page_factory, box):
    server = server_factory()
    page = page_factory(server.url, locale="fr-BE")
    sign_in_as_amina(page)
    page.goto("/learn/demo-fr/basics/welcome")
    page.locator("form.done-form button").click()
    code, _, _ = server.stop()
    assert code == 0
    again = server_factory()
    page = page_factory(again.url, locale="fr-BE")
    sign_in_as_amina(page)
    page.goto("/learn/demo-fr/basics")
    tile = page.locator("a.tile", has_text="Bienvenue")
    assert "completed" in tile.get_attribute("class")


def test_an_idle_learner_is_signed_out(live_server, page_factory):
    page = page_factory(live_server.url, locale="fr-BE")
    page.clock.install()
    sign_in_as_amina(page)
    page.goto("/learn/demo-fr/basics")
    page.clock.fast_forward("14:00")
    assert page.locator(".signout .who").count() == 1  # 14 minutes: still there
    page.clock.fast_forward("02:00")
    page.wait_for_url("**/signin")
    assert page.locator(".signout").count() == 0
