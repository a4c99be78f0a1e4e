"""Rosters: all or nothing, every problem with its row, spreadsheet quirks accepted."""

import io
import sqlite3

from tests.conftest import PASSWORDS, csrf_token

GOOD = "\ufeffdisplay_name;pin;class;gender\nSara;1111;Groupe C;woman\nTom;2222;;\n"
BAD = ("display_name,pin,role,username\n"
       "Lina,12,learner,\n"          # PIN too short
       ",3333,learner,\n"            # no name
       "Omar,4444,learner,fatou\n"   # username taken
       "Rita,5555,pilot,\n")         # unknown role


def people(app) -> int:
    return sqlite3.connect(app.config["DB_PATH"]).execute(
        "SELECT count(*) FROM users WHERE deleted = 0").fetchone()[0]


def test_cli_imports_all_rows_with_semicolons_and_a_bom(runner, box, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text(GOOD, encoding="utf-8")
    assert runner("users", "import", str(roster), "--dry-run").stdout.endswith("2 people are ready to import\n")
    result = runner("users", "import", str(roster), "--class", "Groupe D")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "imported 2 people\n"
    listing = runner("users", "export").stdout
    assert "Sara" in listing and "Groupe C" in listing and "Tom" in listing and "Groupe D" in listing
    assert "argon2" not in listing and "1111" not in listing


def test_cli_reports_every_bad_row_and_imports_nothing(runner, box, app, tmp_path):
    before = people(app)
    roster = tmp_path / "roster.csv"
    roster.write_text(BAD, encoding="utf-8")
    result = runner("users", "import", str(roster))
    assert result.exit_code == 7
    for row, field in ((2, "pin"), (3, "display_name"), (4, "username"), (5, "role")):
        assert f"row {row}: {field}:" in result.stderr
    assert people(app) == before


def test_web_preview_then_import(as_user, app):
    cora = as_user("cora")
    token = csrf_token(cora)
    page = cora.post("/manage/people/import", content_type="multipart/form-data",
                     data={"csrf_token": token, "roster": (io.BytesIO(BAD.encode()), "r.csv")})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Nothing will be imported" in html and "this username is already taken" in html
    before = people(app)
    page = cora.post("/manage/people/import", content_type="multipart/form-data",
                     data={"csrf_token": token, "roster": (io.BytesIO(GOOD.encode()), "r.csv")})
    html = page.get_data(as_text=True)
    assert "Import these 2 people" in html
    response = cora.post("/manage/people/import", data={"csrf_token": token, "text": GOOD,
                                                        "confirm": "1"})
    assert response.status_code == 302
    assert people(app) == before + 2


def test_problems_name_the_files_columns(app):
    from passerelle.server.db import get_db
    from passerelle.server.people import roster

    with app.app_context():
        checked = roster.check(get_db(), "display_name;pin;gender\nNoor;1111;robot\n")
    assert checked.rows[0].errors == {"gender": "one of woman, man, non-binary, other"}
    assert checked.problems() == ["row 2: gender: one of woman, man, non-binary, other"]


def test_imported_learners_get_different_avatars(runner, box, app, tmp_path):
    roster = tmp_path / "roster.csv"
    names = ["Ana", "Ben", "Cleo", "Dani", "Eli"]
    roster.write_text("display_name,pin,class,avatar\n" + "".join(
        f"{n},{1000 + i},Groupe E,{'owl' if n == 'Ben' else ''}\n" for i, n in enumerate(names)),
        encoding="utf-8")
    assert runner("users", "import", str(roster)).exit_code == 0
    avatars = dict(sqlite3.connect(app.config["DB_PATH"]).execute(
        "SELECT display_name, avatar FROM users WHERE display_name IN (?,?,?,?,?)", names))
    assert avatars["Ben"] == "owl"  # a chosen avatar is kept
    assert len(set(avatars.values())) == 5 and None not in avatars.values()


def test_an_export_imports_back_unchanged_then_as_updates(app, box):
    """The export is an import file: formulas neutralised and read back, lists kept, the same
    people updated (by uuid, or by username), never doubled."""
    from passerelle.server.db import get_db
    from passerelle.server.people import accounts, roster

    with app.app_context():
        db = get_db()
        accounts.update_user(db, box.ids["amina"], display_name="=HYPERLINK(1)",
                             profile={"gender": "woman", "age_band": "26-35"})
        before = people(app)
        text = roster.export(db)
        assert "'=HYPERLINK(1)" in text
        checked = roster.check(db, text)
        assert checked.ok and [r.action for r in checked.rows] == ["same"] * len(checked.rows)
        assert roster.import_roster(db, text) == {"created": 0, "updated": 0,
                                                  "unchanged": before}
        assert accounts.get_user(db, box.ids["amina"])["display_name"] == "=HYPERLINK(1)"
        # By username: Fatou renamed, her role left empty so kept; her password unchanged.
        result = roster.import_roster(db, "display_name,username\nFatou N.,FATOU\n")
        assert result == {"created": 0, "updated": 1, "unchanged": 0}
        fatou = accounts.get_user(db, box.ids["fatou"])
        assert (fatou["display_name"], fatou["role"]) == ("Fatou N.", "facilitator")
        assert accounts.authenticate_staff(db, "fatou", PASSWORDS["fatou"], "test")
        # Two rows for one person: refused, with the row.
        checked = roster.check(db, f"uuid,display_name\n{box.ids['bart']},B\n{box.ids['bart']},C\n")
        assert checked.problems() == ["row 3: uuid: the same person as on row 2"]
        assert people(app) == before
