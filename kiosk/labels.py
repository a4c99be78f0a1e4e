"""What people read for the stable ids the box stores: roles, sign-in modes, profile answers,
avatars, pictures, kinds of resource.

The database, the API, CSV files and the command line keep the English ids
(``"job-seeker"``, ``"fox"``); pages show these labels, translated by gettext
when a page is rendered (lazy strings, so this table is built once). Templates
call ``label(group, id)``; an id without a label (a value a newer box synced
here, free text) is shown as it is.

Icons: each avatar, picture and kind of resource has a symbol of the same name
in ``static/icons.svg`` (see the ``icon`` macro in ``templates/macros.html``).
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from passerelle.kiosk import bp
from passerelle.server.people import accounts


def _band(band: str):
    low, _dash, high = band.partition("-")
    if low == "under":
        return _l("under %(age)s", age=high)
    if low == "over":
        return _l("over %(age)s", age=high)
    return _l("%(low)s to %(high)s", low=low, high=high)


LABELS: dict[str, dict] = {
    "role": {"learner": _l("Learner"), "facilitator": _l("Facilitator"),
             "coordinator": _l("Coordinator")},
    "signin_mode": {"pin": _l("Pick their name, then a 4-digit PIN"),
                    "picture": _l("Pick their name, then three pictures"),
                    "none": _l("Pick their name, no code (trusted groups)"),
                    "password": _l("Username and password")},
    "profile_field": {"age_band": _l("Age band"), "gender": _l("Gender"),
                      "languages_spoken": _l("Languages spoken"), "newcomer": _l("Newcomer"),
                      "employment": _l("Employment situation")},
    "age_band": {band: _band(band) for band in accounts.AGE_BANDS},
    "gender": {"woman": _l("Woman"), "man": _l("Man"), "non-binary": _l("Non-binary"),
               "other": _l("Other")},
    "employment": {"employed": _l("Employed"), "job-seeker": _l("Looking for work"),
                   "student": _l("Student"), "retired": _l("Retired"), "other": _l("Other")},
    "newcomer": {"yes": _l("Yes"), "no": _l("No")},
    "avatar": {"fox": _l("Fox"), "owl": _l("Owl"), "bear": _l("Bear"), "turtle": _l("Turtle"),
               "rabbit": _l("Rabbit"), "lion": _l("Lion"), "whale": _l("Whale"), "bee": _l("Bee"),
               "frog": _l("Frog"), "panda": _l("Panda"), "koala": _l("Koala"),
               "penguin": _l("Penguin")},
    "picture": {"sun": _l("Sun"), "moon": _l("Moon"), "tree": _l("Tree"), "cat": _l("Cat"),
                "fish": _l("Fish"), "house": _l("House"), "car": _l("Car"), "flower": _l("Flower"),
                "apple": _l("Apple"), "star": _l("Star"), "boat": _l("Boat"), "bird": _l("Bird")},
    "kind": {"topic": _l("Topic"), "video": _l("Video"), "audio": _l("Audio"),
             "document": _l("Document"), "article": _l("Article"), "html5": _l("Activity"),
             "exercise": _l("Exercise")},
    # Search facets: the slugs of passerelle.content.kolibri_labels (a test checks each has one).
    "facet": {"activity": _l("Learning activity"), "category": _l("Category"), "level": _l("Level")},
    "activity": {"create": _l("Create"), "explore": _l("Explore"), "listen": _l("Listen"),
                 "practice": _l("Practise"), "read": _l("Read"), "reflect": _l("Reflect"),
                 "watch": _l("Watch")},
    "level": {"preschool": _l("Preschool"), "lower-primary": _l("Lower primary"),
              "upper-primary": _l("Upper primary"), "lower-secondary": _l("Lower secondary"),
              "upper-secondary": _l("Upper secondary"), "tertiary": _l("Tertiary"),
              "professional": _l("Professional"), "basic-skills": _l("Basic skills"),
              "work-skills": _l("Work skills")},
    "category": {
        "school": _l("School"), "arts": _l("Arts"), "computer-science": _l("Computer science"),
        "history": _l("History (subject)"), "language-learning": _l("Language learning"),
        "mathematics": _l("Mathematics"), "reading-and-writing": _l("Reading and writing"),
        "sciences": _l("Sciences"), "social-sciences": _l("Social sciences"),
        "foundations": _l("Foundations"), "digital-literacy": _l("Digital literacy"),
        "logic-and-critical-thinking": _l("Logic and critical thinking"),
        "learning-skills": _l("Learning skills"), "literacy": _l("Literacy"),
        "numeracy": _l("Numeracy"), "daily-life": _l("Daily life"),
        "current-events": _l("Current events"), "diversity": _l("Diversity"),
        "entrepreneurship": _l("Entrepreneurship"), "environment": _l("Environment"),
        "financial-literacy": _l("Financial literacy"), "media-literacy": _l("Media literacy"),
        "mental-health": _l("Mental health"), "public-health": _l("Public health"),
        "work": _l("Work"), "professional-skills": _l("Professional skills"),
        "technical-and-vocational-training": _l("Technical and vocational training"),
        "for-teachers": _l("For teachers"), "guides": _l("Guides"),
        "lesson-plans": _l("Lesson plans")},
    # What an import job ended with (the content library's ImportResult.status).
    "import_status": {"installed": _l("installed"), "updated": _l("updated"),
                      "downgraded": _l("replaced by an older version"),
                      "reinstalled": _l("installed again"),
                      "already installed": _l("already installed")},
}

# Symbols of static/icons.svg beyond avatars, pictures and kinds (a test checks they all exist).
UI_ICONS = ("search", "star-line", "check", "cross", "trophy", "bulb", "person")


@bp.app_template_global()
def label(group: str, value) -> str:
    """The translated label of a stored id, or the value itself when it has none."""
    found = LABELS.get(group, {}).get(value)
    return str(found) if found is not None else ("" if value is None else str(value))


def icon_names() -> set[str]:
    """Every symbol a page may ask for."""
    return {*accounts.AVATARS, *accounts.PICTURES, *LABELS["kind"], *UI_ICONS}
