"""Shared fixtures: real index files in tmp_path and the judged multilingual corpus."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from passerelle.search_index import Document, SearchIndex

JUDGED = Path(__file__).with_name("judged.yaml")

PACK_TITLES = {"fr-num": "Compétences numériques", "fr-calc": "Calcul",
               "en-digital": "Digital skills", "en-math": "Arithmetic",
               "nl-digi": "Digitale vaardigheden", "nl-reken": "Rekenen",
               "ar-raqmi": "المهارات الرقمية", "ar-hisab": "الحساب"}


@pytest.fixture(scope="session")
def judged() -> dict:
    return yaml.safe_load(JUDGED.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def corpus(judged) -> list[Document]:
    return [
        Document(id=d["id"], pack_id=d["pack"], kind=d["kind"], language=d["lang"],
                 title=d["title"], description=d.get("description", ""),
                 tags=list(d.get("tags", [])), body=d.get("body", ""),
                 topic_path=[], pack_title=PACK_TITLES.get(d["pack"], ""))
        for d in judged["docs"]
    ]


@pytest.fixture
def index(tmp_path) -> SearchIndex:
    idx = SearchIndex(tmp_path / "index" / "search.db")
    yield idx
    idx.close()


@pytest.fixture(scope="session")
def _corpus_db(tmp_path_factory, corpus) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "search.db"
    idx = SearchIndex(path)
    idx.index(corpus)
    idx.close()
    return path


@pytest.fixture
def corpus_index(_corpus_db) -> SearchIndex:
    """The judged corpus, indexed once per session; tests must not write to it."""
    idx = SearchIndex(_corpus_db)
    yield idx
    idx.close()


@pytest.fixture
def make_doc():
    def make(id, title="", body="", *, pack="p", kind="article", lang="en", **kw) -> Document:
        return Document(id=id, pack_id=pack, kind=kind, language=lang, title=title,
                        body=body, **kw)
    return make
