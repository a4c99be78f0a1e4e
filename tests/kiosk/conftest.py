"""Fixtures of the kiosk tests: a pack of exercises built from an authoring folder, installed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from passerelle.content import build_pack

PACK_ID = "practice-test"

EXERCISES = {
    # One question of every type, in order, with hints, explanations and a tolerance.
    "01-types/01-all": """\
title: Every kind of question
mastery: {model: m_of_n, m: 4, n: 5}
randomize: false
questions:
  - id: choice
    type: single_choice
    prompt: "Which password is the **strongest**?"
    choices: ["P@ss1", "correct horse battery staple", "123456"]
    answer: 1
    hints: ["Length matters more than symbols.", "Count the letters."]
    explanation: A long passphrase has far more combinations.
  - id: habits
    type: multiple_choice
    prompt: Which of these are good habits?
    choices: ["Lock your tablet", "Share your PIN", "Update apps"]
    answers: [0, 2]
    explanation: Never share your PIN.
  - id: litres
    type: numeric
    prompt: How many litres in the bottle, roughly?
    answer: 1.5
    tolerance: 0.25
  - id: capital
    type: text
    prompt: What is the capital of Belgium?
    answers: ["Bruxelles", "Brussel", "Brussels"]
    explanation: It has three names.
  - id: add
    type: generated
    variables: {a: {min: 10, max: 99}, b: {min: 10, max: 99}}
    prompt: "How much is {a} + {b}?"
    answer: "a + b"
    hints: ["Add the tens first."]
    explanation: "{a} + {b} = {answer}"
""",
    "02-mastery/01-m-of-n": """\
title: Two out of three
mastery: {model: m_of_n, m: 2, n: 3}
questions:
  - {id: q, type: single_choice, prompt: Pick B, choices: [A, B], answer: 1}
""",
    "02-mastery/02-streak": """\
title: Three in a row
mastery: {model: streak, n: 3}
questions:
  - {id: q, type: single_choice, prompt: Pick B, choices: [A, B], answer: 1}
""",
    "02-mastery/03-do-all": """\
title: All three
mastery: {model: do_all}
randomize: false
questions:
  - {id: one, type: single_choice, prompt: Question one, choices: [A, B], answer: 1}
  - {id: two, type: single_choice, prompt: Question two, choices: [A, B], answer: 1}
  - {id: three, type: single_choice, prompt: Question three, choices: [A, B], answer: 1}
""",
    "02-mastery/04-shuffled": """\
title: Shuffled
mastery: {model: m_of_n, m: 4, n: 4}
randomize: true
questions:
  - {id: q1, type: single_choice, prompt: Question q1, choices: [A, B], answer: 1}
  - {id: q2, type: single_choice, prompt: Question q2, choices: [A, B], answer: 1}
  - {id: q3, type: single_choice, prompt: Question q3, choices: [A, B], answer: 1}
  - {id: q4, type: single_choice, prompt: Question q4, choices: [A, B], answer: 1}
""",
    "03-generated/01-tiny": """\
title: A tiny range
mastery: {model: streak, n: 50}
questions:
  - id: times
    type: generated
    variables: {a: {min: 1, max: 2}}
    prompt: "How much is {a} times ten?"
    answer: "a * 10"
""",
    "03-generated/02-divide": """\
title: Halves
mastery: {model: streak, n: 2}
questions:
  - id: half
    type: generated
    variables: {a: {min: 1, max: 9}}
    prompt: "Half of {a}?"
    answer: "a / 2"
    tolerance: 0.01
""",
}


def write_pack_source(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pack.yaml").write_text(
        f"id: {PACK_ID}\nversion: 1\ntitle: Practice tests\ndescription: Exercises for tests.\n"
        "language: en\nlicense: CC-BY-4.0\npublisher: Passerelle tests\n")
    for path, text in EXERCISES.items():
        target = root / f"{path}.exercise.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        (target.parent / "_topic.yaml").write_text(f"title: Topic {target.parent.name}\n")
        target.write_text(text)
    return root


@pytest.fixture(scope="session")
def practice_pack(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("practice-pack")
    src = write_pack_source(work / "src")
    return build_pack(src, work / "practice-test.zip", created="2026-11-01T00:00:00Z").path


@pytest.fixture
def installed(app, practice_pack):
    """The box of `app`, with the practice pack installed."""
    app.extensions["passerelle.library"].import_pack(practice_pack)
    return app


class Player:
    """Drives the exercise player through its plain HTML forms, as a tablet without JS would."""

    def __init__(self, client, node_id: str):
        self.client = client
        self.url = f"/practice/{PACK_ID}/{node_id}"
        self.html = ""

    def open(self) -> str:
        response = self.client.get(self.url)
        assert response.status_code == 200, response.status_code
        self.html = response.get_data(as_text=True)
        return self.html

    def field(self, name: str) -> str:
        return re.search(rf'name="{name}" value="([^"]*)"', self.html).group(1)

    @property
    def question_id(self) -> str:
        return re.search(r'data-question="([^"]+)"', self.html).group(1)

    @property
    def prompt(self) -> str:
        return re.search(r'<div class="prompt" id="prompt"[^>]*>(.*?)</div>', self.html, re.S).group(1)

    def post(self, action: str, answer=None, *, page: str | None = None, **extra):
        source = page or self.html
        data = {"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', source).group(1),
                "attempt": re.search(r'name="attempt" value="([^"]*)"', source).group(1),
                "action": action, **extra}
        shown = re.search(r'name="hints_shown" value="([^"]*)"', source)
        if shown:
            data.setdefault("hints_shown", shown.group(1))
        if answer is not None:
            data["answer"] = answer
        response = self.client.post(self.url, data=data, follow_redirects=True)
        self.html = response.get_data(as_text=True)
        return response

    def answer(self, value, *, page: str | None = None):
        """Answer the question on the page (opening it first if needed); the feedback page."""
        if page is None and 'data-question="' not in self.html:
            self.open()
        return self.post("check", value, page=page)

    def next(self):
        return self.post("next")
