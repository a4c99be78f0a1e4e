"""Khan Academy Perseus exercises: reading ``.perseus`` zips and checking answers as Khan Academy does.

A ``.perseus`` file (as Kolibri Studio writes it) is a zip with ``exercise.json``
(``all_assessment_items``, ``mastery_model``, ``m``, ``n``, ``randomize``), one
``<assessment id>.json`` per question (``question`` {content, images, widgets},
``hints``) and ``images/``. Content is Markdown with TeX between ``$…$`` and
widgets placed by ``[[☃ name]]``.

Design
------
- **Converted once, at import.** Each question becomes one question of our
  exercise format, of type ``perseus``: its Markdown prompt (widgets renamed
  ``w1``, ``w2``… so that they make simple form field names), the hints as
  Markdown, and each widget reduced to what rendering and checking need.
  Images (``${☣ LOCALPATH}/images/…``, graphie drawings as their SVG) become
  ``sha256:`` links to blobs, like every other image on the box.
- **Unsupported widgets skip the question, never break it.** A question that
  uses a widget the player does not have (sorter, orderer, interactive
  graph…) is left out and counted by widget, so the coordinator reads
  "12 of 15 questions playable".
- **Checking follows Khan Academy's rules** for numbers: integers, decimals
  (a decimal comma too), proper, improper and mixed fractions, ``\\frac``,
  percentages and multiples of π where the widget allows those forms; a
  tolerance (``maxError``); and simplification: an unsimplified fraction is
  refused without being marked wrong when simplifying is ``required`` (the
  learner is asked to simplify), marked wrong when ``enforced``, and accepted
  when ``optional``. The result is ``correct``, ``wrong`` or ``invalid``
  (nothing is recorded for an invalid answer, as on Khan Academy).
- **Hostile zips are refused** with the checks packs get (traversal, bombs,
  overlaps), and JSON members are size-capped before they are parsed.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction

from .errors import InvalidPack, Problem, UnsafePack
from .manifest import DEFAULT_LIMITS, Limits
from .packio import scan_zip
from .perseus_expression import NotAnExpression, grade_expression
from .perseus_expression import parse as parse_expression

SUPPORTED = ("radio", "numeric-input", "input-number", "dropdown", "image", "expression")
MAX_JSON = 2 * 1024 * 1024          # one question's JSON; real ones are a few KB
MAX_IMAGE = 16 * 1024 * 1024
MAX_MEMBERS = 20_000
MAX_TOTAL = 512 * 1024 * 1024
WIDGET = re.compile(r"\[\[\u2603 ([a-z-]+ [0-9]+)\]\]")
LOCALPATH = re.compile(r"(web\+graphie:)?\$\{\u2623 LOCALPATH\}/(images/[A-Za-z0-9._-]+)")
IMAGE_MIME = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
              "svg": "image/svg+xml", "webp": "image/webp"}
ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")


@dataclass
class PerseusExercise:
    mastery: dict
    randomize: bool
    questions: list[dict]
    total: int                                          # questions in the file
    skipped: Counter = field(default_factory=Counter)   # unsupported widget → questions skipped
    images: dict[str, tuple[str, int, str]] = field(default_factory=dict)  # member → (sha256, size, mime)

    @property
    def playable(self) -> int:
        return len(self.questions)


# --- mastery --------------------------------------------------------------------------

def mastery_of(spec) -> dict:
    """A Kolibri mastery model (``m_of_n``, ``do_all``, ``num_correct_in_a_row_N``) as ours."""
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except ValueError:
            spec = {"type": spec}
    spec = spec if isinstance(spec, dict) else {}
    kind = spec.get("type") or spec.get("mastery_model") or spec.get("model") or ""
    if kind == "do_all":
        return {"model": "do_all"}
    found = re.fullmatch(r"num_correct_in_a_row_([0-9]{1,3})", str(kind))
    if found and int(found.group(1)) >= 1:
        return {"model": "streak", "n": int(found.group(1))}
    m, n = spec.get("m"), spec.get("n")
    if kind == "m_of_n" and isinstance(m, int) and isinstance(n, int) and 1 <= m <= n <= 1000:
        return {"model": "m_of_n", "m": m, "n": n}
    # Khan Academy's default, and Kolibri's when a channel says nothing usable.
    return {"model": "m_of_n", "m": 3, "n": 5}


# --- reading -------------------------------------------------------------------------

def read_exercise(fileobj, where: str = "exercise.perseus", limits: Limits = DEFAULT_LIMITS) -> PerseusExercise:
    """Parse a ``.perseus`` zip (path or binary file object); raises InvalidPack/UnsafePack."""
    try:
        zf = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise InvalidPack([Problem(where, f"not a Perseus exercise: not a zip ({exc})")]) from None
    with zf:
        problems = [p for p in scan_zip(zf, limits, f"{where}: ", MAX_MEMBERS, MAX_TOTAL)
                    if p.severity == "error"]
        if problems:
            raise UnsafePack(problems, "unsafe Perseus exercise refused")
        meta = _json(zf, "exercise.json", where)
        if not isinstance(meta, dict):
            raise InvalidPack([Problem(f"{where}/exercise.json", "not a JSON object")])
        ids = meta.get("all_assessment_items") or []
        mapping = meta.get("assessment_mapping") if isinstance(meta.get("assessment_mapping"), dict) else {}
        out = PerseusExercise(mastery=mastery_of(meta), randomize=bool(meta.get("randomize")),
                              questions=[], total=len(ids) if isinstance(ids, list) else 0)
        for qid in ids if isinstance(ids, list) else []:
            if not isinstance(qid, str) or not ID_RE.match(qid):
                out.skipped["bad question id"] += 1
                continue
            name = f"{qid}.json"
            if name not in zf.NameToInfo and isinstance(mapping.get(qid), str):
                name = mapping[qid]
            if name not in zf.NameToInfo:
                out.skipped["missing question file"] += 1
                continue
            item = _json(zf, name, where)
            converted, unsupported = convert_item(qid, item)
            if converted is None:
                out.skipped[unsupported] += 1
                continue
            converted = _attach_images(zf, converted, out.images, where)
            if converted is None:
                out.skipped["missing image"] += 1
                continue
            out.questions.append(converted)
        return out


def _json(zf: zipfile.ZipFile, name: str, where: str):
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise InvalidPack([Problem(f"{where}/{name}", "missing")]) from None
    if info.file_size > MAX_JSON:
        raise InvalidPack([Problem(f"{where}/{name}", f"larger than {MAX_JSON} bytes")])
    try:
        with zf.open(info) as f:
            data = f.read(MAX_JSON + 1)
        return json.loads(data.decode("utf-8"))
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RecursionError) as exc:
        raise InvalidPack([Problem(f"{where}/{name}", f"unreadable JSON ({type(exc).__name__})")]) from None


def _attach_images(zf: zipfile.ZipFile, q: dict, images: dict, where: str) -> dict | None:
    """Replace ``${☣ LOCALPATH}`` links by ``sha256:`` links to the zip's images (hashed here)."""
    missing = False

    def repl(match: re.Match) -> str:
        nonlocal missing
        graphie, member = match.group(1), match.group(2)
        if graphie:
            member += ".svg"  # the drawing; its -data.json labels are not drawn
        if member not in images:
            info = zf.NameToInfo.get(member)
            ext = member.rsplit(".", 1)[-1].lower()
            if info is None or ext not in IMAGE_MIME or info.file_size > MAX_IMAGE:
                missing = True
                return "missing-image"
            h = hashlib.sha256()
            size = 0
            with zf.open(info) as f:
                while chunk := f.read(1024 * 1024):
                    size += len(chunk)
                    if size > MAX_IMAGE:
                        missing = True
                        return "missing-image"
                    h.update(chunk)
            images[member] = (h.hexdigest(), size, IMAGE_MIME[ext])
        return "sha256:" + images[member][0]

    text = json.dumps(q, ensure_ascii=False)
    if "LOCALPATH" not in text:  # a plain search: the pattern's optional prefix makes it slow
        return q  # no image: nothing to replace (most questions)
    text = LOCALPATH.sub(repl, text)
    return None if missing else json.loads(text)


def convert_item(qid: str, item) -> tuple[dict | None, str]:
    """One Perseus item as a question of type ``perseus``, or (None, why it is unsupported)."""
    if not isinstance(item, dict) or not isinstance(item.get("question"), dict):
        return None, "not a Perseus question"
    question = item["question"]
    content = question.get("content") if isinstance(question.get("content"), str) else ""
    widgets = question.get("widgets") if isinstance(question.get("widgets"), dict) else {}
    used = WIDGET.findall(content)
    renamed: dict[str, str] = {}
    out_widgets: dict[str, dict] = {}
    for name in used:
        if name in renamed:
            continue
        spec = widgets.get(name)
        kind = spec.get("type") if isinstance(spec, dict) else None
        if kind not in SUPPORTED:
            return None, str(kind or name.rsplit(" ", 1)[0])
        converted = _widget(kind, spec.get("options") if isinstance(spec.get("options"), dict) else {})
        if converted is None:
            return None, f"{kind} (unusual options)"
        if kind == "image":
            renamed[name] = converted["markdown"]
            continue
        key = f"w{len(out_widgets) + 1}"
        renamed[name] = f"[[\u2603 {key}]]"
        converted["graded"] = spec.get("graded", True) is not False
        out_widgets[key] = converted
    if not any(w.get("graded") for w in out_widgets.values()):
        return None, "no answer to check"
    prompt = WIDGET.sub(lambda m: renamed.get(m.group(1), ""), content)
    hints = []
    for hint in item.get("hints") or []:
        if isinstance(hint, dict) and isinstance(hint.get("content"), str):
            # Widgets inside hints (explanations, images) are shown as their text only.
            hints.append(WIDGET.sub("", hint["content"]).strip())
    return {"id": qid, "type": "perseus", "prompt": prompt[:50000], "widgets": out_widgets,
            "hints": [h[:50000] for h in hints if h][:20]}, ""


def _text(value) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _widget(kind: str, o: dict) -> dict | None:
    if kind == "radio":
        choices = [c for c in o.get("choices") or [] if isinstance(c, dict)]
        if len(choices) < 2:
            return None
        correct = [i for i, c in enumerate(choices) if c.get("correct")]
        if not correct:
            return None
        out = {"type": "radio", "choices": [_text(c.get("content")) for c in choices],
               "correct": correct, "multiple": bool(o.get("multipleSelect"))}
        if o.get("randomize"):
            # Shown in an order drawn per learner and attempt (``choice_order``); a
            # "None of the above" choice stays last, as on Khan Academy.
            out["shuffle"] = True
            out["pinned"] = [i for i, c in enumerate(choices) if c.get("isNoneOfTheAbove")]
        return out
    if kind == "dropdown":
        choices = [c for c in o.get("choices") or [] if isinstance(c, dict)]
        correct = [i for i, c in enumerate(choices) if c.get("correct")]
        if not choices or len(correct) != 1:
            return None
        return {"type": "dropdown", "choices": [_text(c.get("content")) for c in choices],
                "correct": correct[0], "placeholder": _text(o.get("placeholder"))}
    if kind == "numeric-input":
        answers = []
        for a in o.get("answers") or []:
            if not isinstance(a, dict) or not _is_number(a.get("value")):
                continue
            answers.append({"value": float(a["value"]), "status": a.get("status") or "correct",
                            "max_error": float(a["maxError"]) if _is_number(a.get("maxError")) else 0.0,
                            "simplify": _simplify(a.get("simplify")), "strict": bool(a.get("strict")),
                            "forms": [f for f in a.get("answerForms") or [] if isinstance(f, str)]})
        if not any(a["status"] == "correct" for a in answers):
            return None
        return {"type": "numeric-input", "answers": answers, "coefficient": bool(o.get("coefficient"))}
    if kind == "input-number":
        if not _is_number(o.get("value")):
            return None
        return {"type": "input-number", "answers": [{
            "value": float(o["value"]), "status": "correct",
            "max_error": float(o.get("maxError") or 0) if o.get("inexact") and _is_number(o.get("maxError")) else 0.0,
            "simplify": _simplify(o.get("simplify")), "strict": True,
            "forms": list(ANSWER_TYPES.get(o.get("answerType") or "number", ANSWER_TYPES["number"]))}],
            "coefficient": False}
    if kind == "expression":
        functions = [f for f in o.get("functions") or [] if isinstance(f, str) and re.fullmatch(r"[a-z]", f)]
        answers = []
        for a in o.get("answerForms") or []:
            if not isinstance(a, dict) or not isinstance(a.get("value"), str):
                continue
            try:
                parse_expression(a["value"], functions)
            except (NotAnExpression, RecursionError):
                continue  # an answer this box cannot read: the others may still be
            status = a.get("considered") if a.get("considered") in ("correct", "wrong", "ungraded") else "correct"
            answers.append({"value": a["value"][:200], "status": status, "form": bool(a.get("form")),
                            "simplify": bool(a.get("simplify"))})
        if not any(a["status"] == "correct" for a in answers):
            return None
        return {"type": "expression", "answers": answers, "functions": functions}
    if kind == "image":
        bg = o.get("backgroundImage") if isinstance(o.get("backgroundImage"), dict) else {}
        url = _text(bg.get("url"))
        if not url:
            return None
        alt = _text(o.get("alt")).replace("]", "").replace("\n", " ")[:300]
        caption = _text(o.get("caption"))
        return {"markdown": f"![{alt}]({url})" + (f"\n\n{caption}" if caption else "")}
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _simplify(value) -> str:
    if value is True or value == "required":
        return "required"
    if value == "enforced":
        return "enforced"
    return "optional"


# --- checking -------------------------------------------------------------------------

ALL_FORMS = ("integer", "decimal", "proper", "improper", "mixed", "pi")
ANSWER_TYPES = {
    "number": ALL_FORMS,
    "decimal": ("integer", "decimal"),
    "integer": ("integer",),
    "rational": ("integer", "proper", "improper", "mixed"),
    "improper": ("integer", "proper", "improper"),
    "mixed": ("integer", "proper", "mixed"),
    "percent": ("percent", "integer", "decimal", "proper", "improper", "mixed"),
    "pi": ("pi",),
}
_FRAC_TEX = re.compile(r"^\\d?frac\{([^{}]*)\}\{([^{}]*)\}$")


@dataclass(frozen=True)
class Reading:
    value: float
    form: str             # integer, decimal, proper, improper, mixed, percent, pi
    simplified: bool = True


def read_number(text: str, coefficient: bool = False) -> Reading | None:
    """How Khan Academy reads a typed number; None when it is not one."""
    t = (text or "").strip().replace("\u2212", "-").replace("\u00a0", " ")
    t = re.sub(r"(?<=\d) (?=\d{3}\b)", "", t)  # 1 000 000
    if coefficient and t in ("", "+", "-"):
        return Reading(-1.0 if t == "-" else 1.0, "integer")
    if not t or len(t) > 60:
        return None
    sign = 1.0
    if t[0] in "+-":
        sign = -1.0 if t[0] == "-" else 1.0
        t = t[1:].strip()
    if t.endswith("%"):
        inner = read_number(t[:-1])
        if inner is None or inner.form == "pi":
            return None
        return Reading(sign * inner.value / 100, "percent", inner.simplified)
    pi = re.fullmatch(r"(.*?)\s*(?:\\pi|pi|\u03c0)\s*(?:/\s*([0-9]+))?", t)
    if pi:
        head, den = pi.group(1).strip(), pi.group(2)
        base = read_number(head) if head else Reading(1.0, "integer")
        if base is None or base.form in ("pi", "percent") or (den is not None and int(den) == 0):
            return None
        return Reading(sign * base.value * math.pi / (int(den) if den else 1), "pi")
    frac_tex = _FRAC_TEX.match(t)
    if frac_tex:
        t = f"{frac_tex.group(1).strip()}/{frac_tex.group(2).strip()}"
    mixed = re.fullmatch(r"([0-9]+)\s+([0-9]+)\s*/\s*([0-9]+)", t)
    if mixed:
        whole, num, den = (int(x) for x in mixed.groups())
        if den == 0 or num >= den:
            return None
        return Reading(sign * (whole + num / den), "mixed", math.gcd(num, den) == 1)
    frac = re.fullmatch(r"([0-9]+)\s*/\s*([0-9]+)", t)
    if frac:
        num, den = int(frac.group(1)), int(frac.group(2))
        if den == 0:
            return None
        simplified = math.gcd(num, den) == 1 and den != 1
        return Reading(sign * num / den, "proper" if num < den else "improper", simplified)
    if re.fullmatch(r"[0-9]{1,3}(,[0-9]{3}){2,}(\.[0-9]+)?", t):
        t = t.replace(",", "")  # 1,000,000: thousands, whatever the language
    elif t.count(",") == 1 and "." not in t:
        t = t.replace(",", ".")  # 3,5 is how much of the world writes 3.5
    if re.fullmatch(r"[0-9]+", t):
        return Reading(sign * int(t), "integer")
    if re.fullmatch(r"[0-9]*\.[0-9]+|[0-9]+\.", t):
        return Reading(sign * float(t), "decimal")
    return None


def _matches(reading: Reading, answer: dict) -> bool:
    expected = answer["value"]
    slack = max(answer.get("max_error") or 0.0, 1e-9 * max(1.0, abs(expected)))
    if abs(reading.value - expected) <= slack:
        return True
    # "50%" for 0.5, or "50" for a percent answer stored as 50: Khan Academy accepts both.
    return reading.form == "percent" and abs(reading.value * 100 - expected) <= slack


def grade_number(widget: dict, text: str) -> tuple[str, str]:
    """("correct" | "wrong" | "invalid", reason) for one number widget."""
    reading = read_number(text, widget.get("coefficient", False))
    if reading is None:
        return "invalid", "not a number"
    for answer in widget["answers"]:
        if not _matches(reading, answer):
            continue
        forms = answer.get("forms") or []
        if answer.get("strict") and forms and reading.form not in forms:
            return "wrong", "form"  # the right number written in a form the question excludes
        status = answer.get("status", "correct")
        if status == "ungraded":
            return "invalid", "ungraded"
        if status != "correct":
            return "wrong", ""
        if not reading.simplified:
            if answer.get("simplify") == "required":
                return "invalid", "simplify"
            if answer.get("simplify") == "enforced":
                return "wrong", "simplify"
        return "correct", ""
    return "wrong", ""


def grade(question: dict, given: dict) -> tuple[str, str]:
    """Grade a whole question: every graded widget must be right.

    ``given`` maps widget keys to the text typed, the choice index (dropdown) or the
    list of chosen indexes (radio). Returns ("correct" | "wrong" | "invalid", reason);
    "invalid" is not an answer (empty, not a number, to simplify): nothing is recorded.
    """
    if not isinstance(given, dict):
        return "invalid", "empty"
    verdict = "correct"
    for key, widget in (question.get("widgets") or {}).items():
        if not widget.get("graded", True):
            continue
        value = given.get(key)
        kind = widget.get("type")
        if kind == "radio":
            chosen = _indexes(value, len(widget["choices"]))
            if not chosen:
                return "invalid", "empty"
            if widget.get("multiple"):
                wrong = sorted(chosen) != sorted(widget["correct"])
            else:
                wrong = len(chosen) != 1 or chosen[0] not in widget["correct"]
            if wrong:
                verdict = "wrong"
        elif kind == "dropdown":
            chosen = _indexes(value, len(widget["choices"]))
            if not chosen:
                return "invalid", "empty"
            if chosen[0] != widget["correct"]:
                verdict = "wrong"
        elif kind in ("numeric-input", "input-number", "expression"):
            text = value if isinstance(value, str) else ""
            if not text.strip() and not widget.get("coefficient"):
                return "invalid", "empty"
            state, reason = (grade_expression(widget, text) if kind == "expression"
                             else grade_number(widget, text))
            if state == "invalid":
                return state, reason
            if state == "wrong":
                verdict = "wrong"
        else:
            return "invalid", "unsupported"
    return verdict, ""


def choice_order(widget: dict, seed: str) -> list[int]:
    """The order a radio widget's choices are shown in: as written, or shuffled when the
    question asks for it, the same for the same ``seed`` (a learner's run and attempt), so
    that reloading the page does not move the choices. Pinned choices keep their place."""
    order = list(range(len(widget.get("choices") or ())))
    if not widget.get("shuffle") or not seed:
        return order
    pinned = set(widget.get("pinned") or ())
    moving = [i for i in order if i not in pinned]
    random.Random(seed).shuffle(moving)
    it = iter(moving)
    return [i if i in pinned else next(it) for i in order]


def _indexes(value, count: int) -> list[int]:
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        try:
            i = int(v)
        except (TypeError, ValueError):
            continue
        if 0 <= i < count and not isinstance(v, bool) and i not in out:
            out.append(i)
    return out


def right_answers(question: dict) -> list[str]:
    """The expected answers as short text (Markdown for choices), one per graded widget."""
    out = []
    for widget in (question.get("widgets") or {}).values():
        if not widget.get("graded", True):
            continue
        if widget["type"] == "radio":
            out.extend(widget["choices"][i] for i in widget["correct"])
        elif widget["type"] == "dropdown":
            out.append(widget["choices"][widget["correct"]])
        elif widget["type"] == "expression":
            out.append(next(a["value"] for a in widget["answers"] if a["status"] == "correct"))
        else:
            best = next(a for a in widget["answers"] if a.get("status", "correct") == "correct")
            out.append(_show_number(best["value"], best.get("forms") or []))
    return out


def _show_number(value: float, forms: list[str]) -> str:
    if float(value).is_integer():
        return str(int(value))
    if any(f in forms for f in ("proper", "improper", "mixed")) and "decimal" not in forms:
        frac = Fraction(value).limit_denominator(1000)
        return f"{frac.numerator}/{frac.denominator}"
    return f"{value:.10g}"
