"""Staff pages (facilitators and coordinators), apart from the learners' pages.

Design
------
- One module per area, mirroring ``templates/manage/``: ``classes`` (staff
  home, classes, sessions, attendance, the grid), ``people`` (people, roster
  import), ``lessons`` (lessons, assignments, groups), ``content`` (packs,
  Kolibri channels, the bin), ``reports``, ``material``, ``sync``,
  ``backups`` and ``settings`` (the organisation's); what they share is in ``common``. Signing in (learners and staff) and the first-start
  setup are in ``kiosk/signin.py``, with the learners' pages.
- Pages call services in ``passerelle.server`` and never run SQL on the
  server's tables.
"""
