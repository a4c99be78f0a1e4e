"""Coverage of real Perseus exercises: which questions the player can show and check.

Usage: python bench/perseus_coverage.py DIR_WITH_.perseus_FILES

For every question: is it playable (all its widgets supported), does it render
(prompt, widgets, hints, math) without error, does the expected answer grade
"correct" and a wrong one grade "wrong". Figures are given by widget type.
"""

from __future__ import annotations

import json
import sys
import zipfile
from collections import Counter
from pathlib import Path

from passerelle.content import perseus


def _answers(question: dict) -> tuple[dict, dict]:
    right, wrong = {}, {}
    for key, w in question["widgets"].items():
        if w["type"] == "radio":
            right[key] = list(w["correct"])
            others = [i for i in range(len(w["choices"])) if i not in w["correct"]]
            # All choices right (a multi-select): choosing only some of them is wrong.
            wrong[key] = [others[0]] if others else list(w["correct"])[:1]
        elif w["type"] == "dropdown":
            right[key] = w["correct"]
            wrong[key] = (w["correct"] + 1) % len(w["choices"])
        else:
            text = perseus.right_answers({"widgets": {key: w}})[0]
            right[key] = text
            wrong[key] = str(float(w["answers"][0]["value"]) + 7)
    return right, wrong


def main(folder: str) -> None:
    from passerelle.kiosk import perseus_view

    uses, playable, checked, rendered = Counter(), Counter(), Counter(), Counter()
    total = ok = math_total = tex_failed = unknown = 0
    for path in sorted(Path(folder).glob("*.perseus")):
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("exercise.json"))
            raw = {q: json.loads(zf.read(f"{q}.json")) for q in meta["all_assessment_items"]}
        ex = perseus.read_exercise(path, path.name)
        by_id = {q["id"]: q for q in ex.questions}
        for qid, item in raw.items():
            total += 1
            kinds = {w.get("type") for name, w in item["question"]["widgets"].items()
                     if f"[[\u2603 {name}]]" in item["question"]["content"]}
            for k in kinds:
                uses[k] += 1
            q = by_id.get(qid)
            if q is None:
                continue
            for k in kinds:
                playable[k] += 1
            try:
                html = str(perseus_view.question_html(q, {}, disabled=False))
                html += "".join(str(perseus_view.markdown_math(h)) for h in q["hints"])
                math_total += html.count("<math")
                tex_failed += html.count('class="tex"')
                unknown += html.count("<mi>\\")
                good_render = 'class="tex"' not in html and "&amp;lt;" not in html
            except Exception as exc:  # noqa: BLE001 - a coverage report lists every failure
                print(f"render failed {path.name} {qid}: {exc!r}")
                good_render = False
            right, wrong = _answers(q)
            good = perseus.grade(q, right)[0] == "correct" and perseus.grade(q, wrong)[0] == "wrong"
            if not good:
                print(f"check failed {path.name} {qid}: {perseus.grade(q, right)} {perseus.grade(q, wrong)}")
            for k in kinds:
                rendered[k] += good_render
                checked[k] += good and good_render
            ok += good and good_render
    print(f"math: {math_total} formulas as MathML, {tex_failed} shown as TeX, "
          f"{unknown} unknown commands kept as text")
    print(f"{ok} of {total} questions play (render and check correctly)")
    for k, n in uses.most_common():
        print(f"  {k:<16} in {n:>4} questions: playable {playable[k]:>4}, render {rendered[k]:>4}, "
              f"render+check {checked[k]:>4}")


if __name__ == "__main__":
    main(sys.argv[1])
