"""Kolibri 0.15+ labels of a resource, as search facets: what a learner filters by.

A Kolibri content node lists its labels as comma-separated ids in the columns
``learning_activities``, ``categories`` and ``grade_levels`` (:mod:`.kolibri`
keeps them on the node, under ``kolibri.labels``). The ids are opaque
(``UD5UGM0z`` is "Watch"); the tables below give each known id a stable,
readable slug that the search index, the API and page addresses use, and
that the kiosk translates. An id not in these tables (a newer vocabulary, or
anything a hostile database wrote) is left out of the facets.

Categories are a tree whose ids carry their ancestors' (``d&WXdXWF.qs0Xlaxq``
is "Mathematics" under "School"); a label deeper than two levels counts for
its second-level ancestor, so that "Algebra" is found under "Mathematics"
and a kiosk shows a short list.

The ids come from Learning Equality's ``le-utils`` (version 0.2.20,
``le_utils/constants/labels/``), MIT licence:

    Copyright (c) 2018 Learning Equality

    Permission is hereby granted, free of charge, to any person obtaining a copy of
    this software and associated documentation files (the "Software"), to deal in
    the Software without restriction, including without limitation the rights to
    use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of
    the Software, and to permit persons to whom the Software is furnished to do so,
    subject to the following conditions:

    The above copyright notice and this permission notice shall be included in all
    copies or substantial portions of the Software.

    THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
    IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS
    FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
    COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER
    IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
    CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""

from __future__ import annotations

# le_utils.constants.labels.learning_activities
ACTIVITIES = {
    "UXADWcXZ": "create", "#j8L0eq3": "explore", "mkA1R3NU": "listen", "VwRCom7G": "practice",
    "wA01urpi": "read", "3dSeJhqs": "reflect", "UD5UGM0z": "watch",
}

# le_utils.constants.labels.levels
LEVELS = {
    "FOhG0ib": "preschool", "wnarlxKo": "lower-primary", "BkGYi3lD": "upper-primary",
    "eLt0Mbu4": "lower-secondary", "ZEjiwvOb": "upper-secondary", "FYxwbxts": "tertiary",
    "ZrgBU73s": "professional", "H64ZOHfi": "basic-skills", "Z#97dvst": "work-skills",
}

# le_utils.constants.labels.subjects: the first two levels of the tree.
CATEGORIES = {
    "d&WXdXWF": "school",
    "d&WXdXWF.5QAjgfv7": "arts",
    "d&WXdXWF.e#RTW9E#": "computer-science",
    "d&WXdXWF.zWtcJ&F2": "history",
    "d&WXdXWF.JDUfJNXc": "language-learning",
    "d&WXdXWF.qs0Xlaxq": "mathematics",
    "d&WXdXWF.kHKJ&PbV": "reading-and-writing",
    "d&WXdXWF.i1IdaNwr": "sciences",
    "d&WXdXWF.K80UMYnW": "social-sciences",
    "BCG3&slG": "foundations",
    "BCG3&slG.wZ3EAedB": "digital-literacy",
    "BCG3&slG.0&d0qTqS": "logic-and-critical-thinking",
    "BCG3&slG.fP2j70bj": "learning-skills",
    "BCG3&slG.HLo9TbNq": "literacy",
    "BCG3&slG.Tsyej9ta": "numeracy",
    "PbGoe2MV": "daily-life",
    "PbGoe2MV.J7CU1IxN": "current-events",
    "PbGoe2MV.EHcbjuKq": "diversity",
    "PbGoe2MV.kyxTNsRS": "entrepreneurship",
    "PbGoe2MV.tS7WKnZ7": "environment",
    "PbGoe2MV.HGIc9sZq": "financial-literacy",
    "PbGoe2MV.UOTL#KIV": "media-literacy",
    "PbGoe2MV.d8&gCo2N": "mental-health",
    "PbGoe2MV.kivAZaeX": "public-health",
    "l7DsPDlm": "work",
    "l7DsPDlm.#N2VymZo": "professional-skills",
    "l7DsPDlm.ISEXeZt&": "technical-and-vocational-training",
    "ziJ6PCuU": "for-teachers",
    "ziJ6PCuU.RLfhp37t": "guides",
    "ziJ6PCuU.lOBPr5ix": "lesson-plans",
}

#: facet name -> (Kolibri's column, its table of ids)
FACETS = {
    "activity": ("learning_activities", ACTIVITIES),
    "category": ("categories", CATEGORIES),
    "level": ("grade_levels", LEVELS),
}

#: Every slug of each facet, in the order the tables give them (for checking requests).
SLUGS = {name: tuple(dict.fromkeys(table.values())) for name, (_column, table) in FACETS.items()}

MAX_PER_FACET = 16  # a resource with more labels than this is mislabelled: the rest are left out


def _category(label_id: str) -> str | None:
    parts = label_id.split(".")
    return CATEGORIES.get(".".join(parts[:2]))


def facets(labels: dict | None) -> dict[str, list[str]]:
    """The facet values of a node's stored Kolibri labels (``{"learning_activities": [ids]}``):
    ``{"activity": ["watch"], "category": ["mathematics"]}``; unknown ids are left out."""
    out: dict[str, list[str]] = {}
    if not isinstance(labels, dict):
        return out
    for name, (column, table) in FACETS.items():
        ids = labels.get(column)
        if not isinstance(ids, list):
            continue
        found = []
        for label_id in ids[:64]:
            if not isinstance(label_id, str):
                continue
            slug = _category(label_id) if name == "category" else table.get(label_id)
            if slug and slug not in found:
                found.append(slug)
        if found:
            out[name] = found[:MAX_PER_FACET]
    return out
