"""Learning: what learners do and what facilitators watch.

Design
------
- ``lessons``: lessons, groups, assignments and the class grid a facilitator watches.
- ``mastery``: pure rules deciding when an exercise is mastered (no Flask, no SQL).
"""
