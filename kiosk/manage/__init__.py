"""Staff pages (facilitators and coordinators), apart from the learners' pages.

Design
------
- One module per area, mirroring ``templates/manage/``: ``classes`` (staff
  home, classes, sessions, attendance, lessons, the grid), ``people``,
  ``reports``, ``material`` and ``sync``.
- Pages call services in ``passerelle.server`` and never run SQL on the
  server's tables.
"""
