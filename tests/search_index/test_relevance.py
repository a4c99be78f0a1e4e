"""The judged relevance set (judged.yaml): quality floors that a change must keep.

precision@5 is normalised by the number of relevant documents (capped at 5),
so a query with a single right answer scores 1.0 when it is in the top 5.
"""

RANK_FLOOR_MRR = 0.9
RANK_FLOOR_P5 = 0.9


def evaluate(index, queries):
    rows = []
    for q in queries:
        got = [h.id for h in index.search(q["q"], limit=10).hits]
        relevant = q["relevant"]
        rank = next((i + 1 for i, d in enumerate(got) if d in relevant), None)
        p5 = len(set(got[:5]) & set(relevant)) / min(5, len(relevant))
        rows.append((q["q"], rank, p5, got[:5]))
    mrr = sum(1 / r for _, r, _, _ in rows if r) / len(rows)
    p5 = sum(p for _, _, p, _ in rows) / len(rows)
    return mrr, p5, rows


def test_judged_queries(corpus_index, judged):
    mrr, p5, rows = evaluate(corpus_index, judged["queries"])
    report = "\n".join(f"{q!r:32} rank={r} p@5={p:.2f} {got}" for q, r, p, got in rows)
    assert mrr >= RANK_FLOOR_MRR, f"MRR {mrr:.3f}\n{report}"
    assert p5 >= RANK_FLOOR_P5, f"P@5 {p5:.3f}\n{report}"
    # Every judged query finds a right answer somewhere on the first page.
    assert all(r for _, r, _, _ in rows), report


def test_every_language_is_judged(judged):
    langs = {d["id"]: d["lang"] for d in judged["docs"]}
    assert {langs[q["relevant"][0]] for q in judged["queries"]} == {"fr", "en", "nl", "ar"}
