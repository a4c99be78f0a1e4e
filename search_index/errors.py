"""Exceptions of the search library; the server maps them to HTTP answers."""


class SearchError(Exception):
    """The index cannot do what was asked (unreadable file, busy writer...)."""


class QuerySyntaxError(SearchError):
    """A query could not be turned into a search.

    Learners' text never raises it (it is tokenized, not parsed as FTS5
    syntax); it signals a programming error such as a non-text query.
    """
