"""Staff pages (facilitators and coordinators), apart from the learners' pages.

Design
------
- One module per area, mirroring ``templates/manage/``: ``classes`` (staff
  home, classes, sessions, attendance), ``people`` (people, roster
  import), ``lessons`` (lessons, assignments, groups), ``upkeep`` (renaming,
  deleting and copying classes; editing groups), ``coach`` (the grids of a
  class, a group and a lesson, a learner, the activity log: printable and as
  CSV), ``content`` (packs, Kolibri channels, the bin), ``reports``,
  ``quizzes`` (quizzes that assess and their reports), ``material``, ``sync``,
  ``backups``, ``settings`` (the
  organisation's) and ``label`` (the box's printed label); what they share is in ``common``. Signing in (learners and staff) and the first-start
  setup are in ``kiosk/signin.py``, with the learners' pages.
- Pages call services in ``passerelle.server`` and never run SQL on the
  server's tables.
"""
