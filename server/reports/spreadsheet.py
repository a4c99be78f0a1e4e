"""CSV files that people open in a spreadsheet: text stays text.

Names, class names and titles come from learners, staff and pack authors. A
spreadsheet that opens a CSV takes a cell starting with ``=``, ``+``, ``-`` or
``@`` (or a tab or carriage return before one) as a formula: a name like
``=HYPERLINK("http://…","Click")`` would run on the coordinator's computer.
Every CSV the box writes goes through :func:`writer`, which does what OWASP's
"CSV Injection" page recommends:

- a text cell starting with one of those characters gets a ``'`` in front, so
  the spreadsheet shows it as text (the ``'`` is visible: the value is not
  silently changed);
- every text cell is quoted, so a ``,`` or ``;`` inside one never starts a new
  cell (a cell that would then begin with ``=``);
- numbers written as numbers (``int``, ``float``) are left alone, negative ones
  too, and so is text that is only a plain number (``-3``, ``0.5``): a
  spreadsheet reads those as numbers, never as formulas.

:func:`unescape` undoes the ``'`` when a file written here is read back (the
roster export is also an import file).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+([.,][0-9]+)?")  # a decimal comma too


def cell(value: Any) -> Any:
    """One value as it may go into a CSV cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return value
    text = str(value)
    if text.startswith(FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def unescape(text: str) -> str:
    """A cell read back from a file written here, as it was before :func:`cell`."""
    if text.startswith("'") and text[1:].startswith(FORMULA_START):
        return text[1:]
    return text


class _Writer:
    def __init__(self, out, delimiter: str = ","):
        # QUOTE_NONNUMERIC: every str is quoted, int and float are not.
        self._csv = csv.writer(out, delimiter=delimiter, lineterminator="\r\n",
                               quoting=csv.QUOTE_NONNUMERIC)

    def writerow(self, row: Iterable[Any]) -> None:
        self._csv.writerow([cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(out, delimiter: str = ",") -> _Writer:
    """A ``csv.writer`` over ``out`` that neutralises formulas (see the module docstring);
    ``;`` for the files people open in Excel set to French or Dutch (Belgium)."""
    return _Writer(out, delimiter)
