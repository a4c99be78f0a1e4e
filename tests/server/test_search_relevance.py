"""Relevance on the real bundled library: a judged query set, scored, with a floor.

The figures are printed (run with -s) and recorded in docs/benchmarks.md.
"""

from pathlib import Path

import pytest
import yaml
from passerelle.server.cli.base import main

JUDGED = yaml.safe_load((Path(__file__).resolve().parents[1] / "fixtures" / "judged-bundled.yaml")
                        .read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    from passerelle import content as lib
    from passerelle.server import db as dbmod
    from passerelle.server.search.service import attach

    home = tmp_path_factory.mktemp("bundled") / "box"
    assert main(["--home", str(home), "content", "import", "--bundled"]) == 0
    from passerelle.server.home import Home

    h = Home(home)
    library = lib.Library(lambda: dbmod.connect(h.db_path), h.storage, h.tmp)
    return attach(library, h)


def score(service, query, relevant):
    hits = service.index.search(query, limit=5).hits
    marks = [any(h.id.startswith(prefix) for prefix in relevant) for h in hits]
    first = next((i for i, ok in enumerate(marks) if ok), None)
    return sum(marks) / 5, (1 / (first + 1)) if first is not None else 0.0


@pytest.mark.parametrize("language", sorted(JUDGED))
def test_judged_queries(bundled, language, capsys):
    scores = {q: score(bundled, q, rel) for q, rel in JUDGED[language].items()}
    precision = sum(p for p, _ in scores.values()) / len(scores)
    mrr = sum(r for _, r in scores.values()) / len(scores)
    with capsys.disabled():
        print(f"\n{language}: {len(scores)} queries, precision@5 {precision:.2f}, MRR {mrr:.2f}")
    missed = [q for q, (_, r) in scores.items() if r == 0]
    assert not missed, f"no relevant result in the top 5 for {missed}"
    assert mrr >= 0.85
    assert precision >= 0.5
