"""Khan Academy (Perseus) questions as server-rendered HTML: Markdown, math as MathML, widgets as form fields.

Design
------
- **Math is MathML made on the box**, not a script: TeX between ``$…$`` is
  converted by latex2mathml (pure Python) and the page carries no math
  library at all, which keeps a question page a few KB. Khan Academy's colour
  macros (``\\blue{…}``) are rewritten to ``\\color``. A browser without MathML
  still shows the symbols in reading order.
- **The converter's output is not trusted**: it is parsed and rebuilt keeping
  only MathML elements and presentation attributes (``\\text{<script>}`` and
  ``\\href`` come out as text or are dropped). TeX the converter cannot read is
  shown as code.
- **Widgets are plain form fields** (radio buttons, checkboxes, a select, text
  fields with the number pad), placed where ``[[☃ wN]]`` stands in the prompt,
  named ``wN``, so answering works without JavaScript.
- **A question carries its own direction.** Kolibri channels translate their titles
  before their questions: an Arabic channel holds English questions. The direction is
  read from the question's letters (:func:`text_attrs`), not taken from the channel's
  language, and the widgets' own words ("Choose one answer:") keep the interface's.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from functools import lru_cache

from markupsafe import Markup, escape
from passerelle.content.perseus import choice_order
from passerelle.kiosk.markdown import render_markdown
from passerelle.server.i18n import content_attrs, content_direction

_MATH = re.compile(r"(?<!\\)\$((?:\\.|[^$\\])+?)\$", re.S)
_WIDGET = re.compile(r"\[\[\u2603 (w[0-9]+)\]\]")
_TOKEN = re.compile(r"PSVMATH([0-9]+)X|PSVWIDGET([0-9]+)X")
_COLORS = {"blue": "#1865f2", "red": "#d92916", "green": "#00a60e", "gray": "#626569", "grey": "#626569",
           "purple": "#9059ff", "pink": "#e91e63", "orange": "#e35c13", "gold": "#b8860b",
           "maroon": "#9e034e", "teal": "#01a995", "mint": "#00a878", "navy": "#0c3c7b",
           "kaBlue": "#1865f2", "kaGreen": "#00a60e"}
_COLOR_MACRO = re.compile(r"\\(" + "|".join(sorted(_COLORS, key=len, reverse=True)) + r")[A-E]?(?![A-Za-z])")
_MATHML = {"math", "mi", "mn", "mo", "ms", "mtext", "mspace", "mrow", "mfrac", "msqrt", "mroot", "mstyle",
           "merror", "mpadded", "mphantom", "mfenced", "menclose", "msub", "msup", "msubsup", "munder",
           "mover", "munderover", "mmultiscripts", "mprescripts", "none", "mtable", "mtr", "mtd",
           "mlabeledtr", "semantics", "annotation"}
_ATTRS = {"display", "mathvariant", "mathcolor", "mathbackground", "displaystyle", "scriptlevel", "width",
          "height", "depth", "columnalign", "rowalign", "rowspacing", "columnspacing", "columnlines",
          "rowlines", "frame", "accent", "accentunder", "stretchy", "fence", "separator", "lspace", "rspace",
          "linethickness", "notation", "minsize", "maxsize", "movablelimits", "largeop", "symmetric", "form",
          "mathsize", "align", "columnspan", "rowspan", "equalrows", "equalcolumns", "open", "close",
          "separators"}
_SAFE_VALUE = re.compile(r"^[#A-Za-z0-9 .,%+-]*$")


@lru_cache(maxsize=4096)
def tex_to_mathml(tex: str) -> Markup:
    """One formula as safe MathML, or the TeX as code when it cannot be converted."""
    from latex2mathml.converter import convert

    if not tex.strip():
        return Markup("")
    # \textcolor scopes the colour to its argument (\color would run to the end of the formula),
    # and align* because Khan Academy's aligned steps are not numbered equations.
    source = _COLOR_MACRO.sub(lambda m: r"\textcolor{" + _COLORS[m.group(1)] + "}", tex)
    source = re.sub(r"\\(begin|end)\{(align|aligned|eqnarray)\}", r"\\\1{align*}", source)
    try:
        root = ET.fromstring(convert(source))
    except Exception:  # noqa: BLE001 - any converter failure degrades to showing the TeX
        return Markup('<code class="tex">{}</code>').format(tex)
    return Markup(_rebuild(root))


def _rebuild(el: ET.Element) -> str:
    tag = el.tag.rsplit("}", 1)[-1]
    # Plain strings throughout: adding str to Markup would escape the children a second time.
    inner = str(escape(el.text or "")) + "".join(_rebuild(c) + str(escape(c.tail or "")) for c in el)
    if tag not in _MATHML:
        return inner  # <script> inside \text{}: its text only, escaped
    attrs = "".join(f' {k}="{escape(v)}"' for k, v in el.attrib.items()
                    if k in _ATTRS and _SAFE_VALUE.match(v))
    return f"<{tag}{attrs}>{inner}</{tag}>"


def markdown_math(text: str, widgets: dict[str, Markup] | None = None) -> Markup:
    """Perseus Markdown: math and widget placeholders are lifted out, Markdown rendered, then put back."""
    maths: list[str] = []

    def lift(match: re.Match) -> str:
        maths.append(match.group(1))
        return f"PSVMATH{len(maths) - 1}X"

    order: list[str] = []

    def lift_widget(match: re.Match) -> str:
        order.append(match.group(1))
        return f"PSVWIDGET{len(order) - 1}X"

    body = _WIDGET.sub(lift_widget, _MATH.sub(lift, text or ""))
    html = str(render_markdown(body.replace("\\$", "$")))

    def put_back(match: re.Match) -> str:
        if match.group(1) is not None:
            index = int(match.group(1))
            return str(tex_to_mathml(maths[index].strip())) if index < len(maths) else ""
        index = int(match.group(2))
        key = order[index] if index < len(order) else ""
        return str((widgets or {}).get(key, ""))

    # A widget alone in its paragraph (a list of choices) must not sit inside a <p>.
    html = re.sub(r"<p>(PSVWIDGET[0-9]+X)</p>", r"\1", html)
    return Markup(_TOKEN.sub(put_back, html))  # noqa: S704 - every part is escaped or rebuilt


def _widget_html(key: str, widget: dict, draft, disabled: bool, labels: dict, seed: str = "") -> Markup:
    off = Markup(" disabled") if disabled else Markup("")
    kind = widget["type"]
    if kind == "radio":
        multiple = widget.get("multiple")
        chosen = {str(v) for v in (draft if isinstance(draft, list) else [draft])}
        legend = labels["choose_all"] if multiple else labels["choose_one"]
        items = []
        # Shown shuffled when the question asks for it; each keeps its own index as its value.
        for i in choice_order(widget, f"{seed}:{key}" if seed else ""):
            choice = widget["choices"][i]
            checked = Markup(" checked") if str(i) in chosen else Markup("")
            items.append(Markup(
                '<label class="choice" for="{k}-{i}"><input type="{t}" id="{k}-{i}" name="{k}" value="{i}"{c}{o}>'
                ' <span class="choice-text">{text}</span></label>').format(
                k=key, i=i, t="checkbox" if multiple else "radio", c=checked, o=off,
                text=markdown_math(choice)))
        # The legend is the interface's words (``labels["attrs"]``: its lang and dir).
        return Markup('<fieldset class="choices"><legend{}>{}</legend>{}</fieldset>').format(
            labels["attrs"], legend, Markup("").join(items))
    if kind == "dropdown":
        options = [Markup('<option value="">{}</option>').format(widget.get("placeholder") or "…")]
        for i, choice in enumerate(widget["choices"]):
            selected = Markup(" selected") if str(draft) == str(i) else Markup("")
            options.append(Markup('<option value="{}"{}>{}</option>').format(i, selected, plain_text(choice)))
        return Markup('<select name="{}" class="perseus-select" aria-label="{}"{}>{}</select>').format(
            key, labels["answer"], off, Markup("").join(options))
    value = draft if isinstance(draft, str) else ""
    if kind == "expression":  # letters and operators: the full keyboard, a wider field
        return Markup(
            '<input type="text" name="{k}" class="perseus-expression" value="{v}" dir="ltr" maxlength="100"'
            ' size="14" spellcheck="false" autocapitalize="off" autocomplete="off" aria-label="{a}"{o}>').format(
            k=key, v=value, a=labels["answer"], o=off)
    return Markup(
        '<input type="text" name="{k}" class="perseus-number" value="{v}" inputmode="decimal" dir="ltr"'
        ' maxlength="40" size="6" spellcheck="false" autocapitalize="off" aria-label="{a}"{o}>').format(
        k=key, v=value, a=labels["answer"], o=off)


# Letters of right-to-left scripts (Hebrew, Arabic, Syriac, Thaana, N'Ko, their presentation forms).
_RTL_LETTER = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")
_LETTER = re.compile(r"[^\W\d_]")


def text_attrs(question: dict, language: str | None) -> Markup:
    """`` lang=".." dir=".."`` for a Perseus question: the node's language when the question's
    letters are written in its direction, else the direction the letters say (and no language
    claimed: an English question of an Arabic channel is not Arabic). Math is left out of the
    count: ``$x$`` is not English."""
    parts = [question.get("prompt", ""), *(question.get("hints") or [])]
    for widget in (question.get("widgets") or {}).values():
        parts.extend(str(c) for c in widget.get("choices") or [])
    text = _WIDGET.sub(" ", _MATH.sub(" ", " ".join(str(p) for p in parts)))
    letters = len(_LETTER.findall(text))
    if not letters:
        return content_attrs(language)
    said = "rtl" if 2 * len(_RTL_LETTER.findall(text)) > letters else "ltr"
    if language and content_direction(language) == said:
        return content_attrs(language)
    return Markup(' lang="" dir="%s"') % said


def plain_text(text: str) -> str:
    """A choice inside <option> cannot hold markup: TeX and Markdown marks are dropped."""
    return re.sub(r"[$*_`\\]", "", text or "").strip()


DEFAULT_LABELS = {"choose_one": "Choose one answer:", "choose_all": "Choose every right answer:",
                  "answer": "Your answer", "attrs": Markup("")}


def question_html(question: dict, draft: dict | None, disabled: bool = False,
                  labels: dict | None = None, prefix: str = "", seed: str = "") -> Markup:
    """The prompt with its widgets in place; ``draft`` refills what the learner had entered.
    ``prefix`` goes before each field's name, so several questions share one form (a quiz);
    ``seed`` (the learner's run and attempt) orders the choices a question shuffles."""
    draft = draft if isinstance(draft, dict) else {}
    labels = {**DEFAULT_LABELS, **(labels or {})}
    widgets = {key: _widget_html(prefix + key, w, draft.get(key), disabled, labels, seed)
               for key, w in (question.get("widgets") or {}).items()}
    html = markdown_math(question.get("prompt", ""), widgets)
    missing = [widgets[k] for k in widgets if f"[[\u2603 {k}]]" not in question.get("prompt", "")]
    return Markup(html + Markup("").join(missing))


def read_form(question: dict, form, prefix: str = "") -> dict:
    """The learner's entries from a posted form, keyed like the question's widgets."""
    out: dict = {}
    for key, widget in (question.get("widgets") or {}).items():
        if widget["type"] == "radio":
            out[key] = [v for v in form.getlist(prefix + key) if v.isdigit()][:50]
        else:
            out[key] = form.get(prefix + key, "")[:100]
    return out


def answer_texts(question: dict, given: dict) -> list[str]:
    """What the learner answered, as short text, one entry per widget."""
    out = []
    for key, widget in (question.get("widgets") or {}).items():
        value = given.get(key) if isinstance(given, dict) else None
        if widget["type"] in ("radio", "dropdown"):
            values = value if isinstance(value, list) else [value]
            for v in values:
                if isinstance(v, (int, str)) and str(v).isdigit() and int(v) < len(widget["choices"]):
                    out.append(plain_text(widget["choices"][int(v)]))
        elif isinstance(value, str) and value.strip():
            out.append(value.strip()[:40])
    return out
