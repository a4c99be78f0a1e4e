"""Full-text search for Passerelle: SQLite FTS5 in its own file, analysis in Python.

Design in brief (details in docs/search.md):

- The index is a separate SQLite file in WAL mode, so indexing a large pack
  never holds the main database's write lock, and searches keep running while
  it is written. Each thread uses its own connection.
- Text is analysed in Python for each document's language (folding of case,
  accents and Arabic letter variants; French elisions; Snowball stemming for
  French, Dutch and English; light Arabic stemming) and stored as
  space-separated tokens in FTS5; originals are kept for display and snippets.
- A query word is looked up under its stem in every language, so learners need
  not say which language they type in. Words are AND-ed, then OR-ed when
  nothing matches; unknown words are corrected from the index's vocabulary
  (bounded edit distance) for "did you mean" and a fuzzy fallback. Kind words
  ("vidéo", "oefening", "quiz"...) become filters. BM25 with field weights ranks.
- Learners' input is tokenized, never passed to FTS5 as syntax.

:class:`SearchPool` runs searches in worker processes, so that a threaded
server searches on every core (``search_index/pool.py``).

This package is a library: it imports neither Flask nor the rest of Passerelle,
and reports problems with :class:`SearchError` / :class:`QuerySyntaxError`.
"""

from .errors import QuerySyntaxError, SearchError
from .extract import (
    extract_html_text,
    extract_markdown_text,
    extract_pdf_text,
    extract_vtt_text,
)
from .index import Document, Hit, SearchIndex, SearchResult, snippet
from .pool import SearchPool, default_workers

__all__ = [
    "Document",
    "Hit",
    "QuerySyntaxError",
    "SearchError",
    "SearchIndex",
    "SearchPool",
    "SearchResult",
    "default_workers",
    "extract_html_text",
    "extract_markdown_text",
    "extract_pdf_text",
    "extract_vtt_text",
    "snippet",
]
