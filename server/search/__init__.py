"""Search at the edge: indexing installed packs and answering learners' queries.

Design
------
- ``service``: the listener that keeps the index in step with the content
  library, the search service with its worker processes and caches, and the
  search routes. The index itself is the ``passerelle.search_index`` library.
"""
