"""Learners keep their place, and content keeps its language and direction in any interface."""

from __future__ import annotations

import re

from tests.conftest import csrf_token


def lesson_for_class_a(fatou, box, items=("basics/game", "basics/welcome", "basics/quiz")) -> str:
    token = csrf_token(fatou)
    fatou.post("/manage/lessons", data={"csrf_token": token, "title": "Ma leçon",
                                        "item": [f"demo-fr/{i}" for i in items]})
    page = fatou.get(f"/manage/classes/{box.ids['class_a']}").get_data(as_text=True)
    uuid = re.search(r'<option value="([0-9a-f-]+)">Ma leçon</option>', page).group(1)
    fatou.post(f"/manage/classes/{box.ids['class_a']}/assignments",
               data={"csrf_token": token, "lesson_uuid": uuid})
    return uuid


def test_i_have_finished_goes_on_to_the_next_resource_of_the_topic(as_user):
    amina = as_user("amina")
    page = amina.get("/learn/demo-fr/basics/welcome").get_data(as_text=True)
    assert '<p class="place-here">1 of 5</p>' in page
    assert 'rel="next" href="/learn/demo-fr/basics/clip"' in page and 'rel="prev"' not in page
    done = amina.post("/learn/demo-fr/basics/welcome/done", data={"csrf_token": csrf_token(amina)})
    assert done.headers["Location"] == "/learn/demo-fr/basics/clip"
    page = amina.get("/learn/demo-fr/basics/clip").get_data(as_text=True)
    assert "2 of 5" in page and 'rel="prev" href="/learn/demo-fr/basics/welcome"' in page
    # The last one goes back to the topic, where it shows as done.
    last = amina.post("/learn/demo-fr/basics/guide/done", data={"csrf_token": csrf_token(amina)})
    assert last.headers["Location"] == "/learn/demo-fr/basics"


def test_a_lesson_is_followed_in_its_own_order(as_user, box):
    uuid = lesson_for_class_a(as_user("fatou"), box)
    amina = as_user("amina")
    home = amina.get("/").get_data(as_text=True)
    assert f"/learn/demo-fr/basics/game?lesson={uuid}" in home
    page = amina.get(f"/learn/demo-fr/basics/game?lesson={uuid}").get_data(as_text=True)
    assert "1 of 3" in page and f'href="/learn/demo-fr/basics/welcome?lesson={uuid}"' in page
    done = amina.post(f"/learn/demo-fr/basics/game/done?lesson={uuid}",
                      data={"csrf_token": csrf_token(amina)})
    assert done.headers["Location"] == f"/learn/demo-fr/basics/welcome?lesson={uuid}"
    # The exercise of the lesson leads back to the lesson.
    quiz = amina.get(f"/learn/demo-fr/basics/quiz?lesson={uuid}")
    assert quiz.headers["Location"] == f"/practice/demo-fr/basics/quiz?lesson={uuid}"
    page = amina.get(quiz.headers["Location"]).get_data(as_text=True)
    assert "Back to the lesson" in page and "3 of 3" in page


def test_the_last_item_of_a_lesson_says_the_lesson_is_finished(as_user, box):
    uuid = lesson_for_class_a(as_user("fatou"), box, items=("basics/game", "basics/welcome"))
    amina = as_user("amina")
    token = csrf_token(amina)
    first = amina.post(f"/learn/demo-fr/basics/game/done?lesson={uuid}", data={"csrf_token": token})
    assert "end of the lesson" not in amina.get(first.headers["Location"]).get_data(as_text=True)
    last = amina.post(f"/learn/demo-fr/basics/welcome/done?lesson={uuid}", data={"csrf_token": token})
    home = amina.get(last.headers["Location"]).get_data(as_text=True)
    assert "You reached the end of the lesson Ma leçon. Well done!" in home


def test_french_content_keeps_its_direction_in_the_arabic_interface(as_user):
    amina = as_user("amina")
    amina.get("/language/ar?next=/")
    page = amina.get("/learn/demo-fr/basics/welcome").get_data(as_text=True)
    assert '<html lang="ar" dir="rtl">' in page
    assert '<div class="article-body" lang="fr" dir="ltr">' in page
    assert '<h1 lang="fr" dir="ltr">Bienvenue</h1>' in page
    assert re.search(r'<a href="/learn/demo-fr/basics" lang="fr" dir="ltr">Les bases</a>', page)
    topic = amina.get("/learn/demo-fr/basics").get_data(as_text=True)
    assert '<span class="title" lang="fr" dir="ltr">Bienvenue</span>' in topic
    practice = amina.get("/practice/demo-fr/basics/quiz").get_data(as_text=True)
    assert '<div class="prompt" id="prompt" lang="fr" dir="ltr">' in practice
    results = amina.get("/search?q=doigt").get_data(as_text=True)
    assert '<p class="snippet" lang="fr" dir="ltr">' in results


def test_sums_are_left_to_right_isolates():
    from passerelle.kiosk.markdown import render_markdown

    html = render_markdown("كم يساوي 33 + 6 + 2 = 41 ؟")
    assert '<bdi dir="ltr">33 + 6 + 2 = 41</bdi>' in html


def test_the_next_person_does_not_inherit_the_last_learners_language(as_user):
    amina = as_user("amina")
    amina.get("/language/ar?next=/")
    assert 'dir="rtl"' in amina.get("/").get_data(as_text=True)[:200]
    amina.post("/signout", data={"csrf_token": csrf_token(amina)})
    page = amina.get("/signin").get_data(as_text=True)
    assert '<html lang="en" dir="ltr">' in page


def test_article_images_have_their_size_so_the_page_does_not_shift(client):
    page = client.get("/learn/demo-fr/basics/welcome").get_data(as_text=True)
    image = next(i for i in re.findall(r"<img [^>]*>", page) if "Un doigt" in i)  # the article's
    assert 'width="40"' in image and 'height="40"' in image and 'alt="Un doigt sur une tablette"' in image


def test_empty_states_and_sign_out_are_plain(as_user):
    amina = as_user("amina")
    page = amina.get("/search?q=zzzzqqq").get_data(as_text=True)
    assert '<li class="empty">' in page  # styled without a list bullet (li.empty in style.css)
    home = amina.get("/").get_data(as_text=True)
    assert '<button type="submit" class="done">Sign out</button>' in home
    assert "I have finished" not in home


def test_did_you_mean_is_one_sentence_in_each_language(as_user):
    amina = as_user("amina")
    amina.get("/language/ar?next=/")
    page = amina.get("/search?q=doigtt").get_data(as_text=True)
    found = re.search(r'<p class="did-you-mean">(.*?)</p>', page, re.S).group(1)
    assert found.startswith("هل تقصد <a href=") and found.endswith("</a>؟")
    assert '<bdi dir="auto">doigt</bdi>' in found
