"""Reports: impact for funders, exports for other systems, certificates for learners.

Design
------
- Pure functions over the database, no Flask: the page, the CSV and the CLI
  render the same objects, so they cannot disagree (``impact``).
"""
