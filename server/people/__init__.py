"""People, classes, sessions and attendance, with no web framework in sight.

Design
------
- ``accounts``: the rules for people, classes, memberships, sessions and
  attendance, and sign-in with its lockout. Every change is an operation in the
  log (:mod:`passerelle.server.records`), so it syncs.
- ``roster``: people from a spreadsheet (CSV) into the box, all or nothing, and back out.
"""
