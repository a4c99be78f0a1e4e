"""Installed content at the edge: the library's web routes, imports and authoring.

Design
------
- ``web``: the one constructor of the content :class:`~passerelle.content.Library`
  for the app, the routes serving blobs, html5 apps and PDF pages, and the
  catalogue queries the pages use.
- ``pdfpages``: PDF pages rendered to images on the box, in one worker process.
- ``imports``: imports from the browser (uploads, USB sticks, other boxes) as
  background jobs.
- ``authoring``: facilitators' own material, published as a local pack.
"""
