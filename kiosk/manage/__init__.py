"""Staff pages (facilitators and coordinators), apart from the learners' pages.

Design
------
- One module per area, mirroring ``templates/manage/``: ``classes`` (staff
  home, people, classes, sessions, attendance, lessons, the grid), ``reports``,
  ``material``, ``sync`` and ``backups``. Signing in (learners and staff) and the first-start
  setup are in ``kiosk/signin.py``, with the learners' pages.
- Pages call services in ``passerelle.server`` and never run SQL on the
  server's tables.
"""
