"""The operation log folds to the same state whatever the order or duplication of operations."""

import random
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from passerelle.server import db as dbmod
from passerelle.server import records

TABLES = ["organisations", "users", "classes", "memberships", "class_sessions", "attendance",
          "progress", "missed_questions", "ops"]


_TEMPLATE = {}


@pytest.fixture(autouse=True)
def template(template_db):
    _TEMPLATE["path"] = template_db


def new_box(tmp_path, name, device):
    path = tmp_path / f"{name}.db"
    shutil.copy(_TEMPLATE["path"], path)
    db = dbmod.connect(path)
    db.execute("UPDATE meta SET value = ? WHERE key = 'device_id'", [device])
    db.conn.commit()
    return db


def dump(db):
    return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}


USERS = [f"u{i}" for i in range(4)]
NODES = [("pack-a", "n1"), ("pack-a", "n2"), ("pack-b", "n1")]

action = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(USERS), st.text(max_size=5)),
    st.tuples(st.just("delete"), st.sampled_from(USERS), st.none()),
    st.tuples(st.just("event"), st.sampled_from(USERS),
              st.tuples(st.sampled_from(NODES), st.sampled_from(["progress", "answer", "completed"]),
                        st.floats(0, 1), st.booleans(), st.integers(0, 600),
                        st.one_of(st.none(), st.integers(0, 500)),
                        st.sampled_from([None, "q1", "q2"]))),
)


def perform(db, act, clock_ms):
    kind, uuid, arg = act
    if kind == "put":
        with records.write_tx(db):
            op = records._new_op(db, "put", "user", uuid, {"role": "learner", "display_name": arg})
            records.apply(db, op)
    elif kind == "delete":
        records.delete(db, "user", uuid)
    else:
        (pack, node), etype, progress, correct, seconds, position, question = arg
        records.event(db, uuid, {"pack_id": pack, "node_id": node, "type": etype,
                                 "progress": progress, "correct": correct, "seconds": seconds,
                                 "position": position, "question_id": question})


def test_any_order_and_duplication_folds_to_the_same_state(databases, engine):
    # Fewer examples on PostgreSQL: each one empties six databases there.
    @settings(max_examples=40 if engine == "sqlite" else 8, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(script=st.lists(st.tuples(st.integers(0, 2), action), min_size=1, max_size=25),
           seed=st.integers(0, 2**32))
    def check(script, seed):
        try:
            folds_to_the_same_state(databases, script, seed)
        finally:
            databases.close()

    check()


def folds_to_the_same_state(databases, script, seed):
    boxes = [databases.new(f"box{i}", f"device-{i}") for i in range(3)]
    for box_index, act in script:
        perform(boxes[box_index], act, None)
    all_ops = [op for box in boxes for origin in [records.device_id(box)]
               for op in records.ops_since(box, origin, 0, limit=10_000)]
    rng = random.Random(seed)
    states = []
    for trial in range(3):
        target = databases.new(f"replay{trial}", f"replayer-{trial}")
        shuffled = all_ops + rng.sample(all_ops, k=len(all_ops) // 2)  # duplicates too
        rng.shuffle(shuffled)
        with records.write_tx(target):
            if trial == 2:  # a batch's way: the same state as one op at a time
                records.apply_many(target, shuffled)
            else:
                for op in shuffled:
                    records.apply(target, op)
        states.append(dump(target))
    assert states[0] == states[1] == states[2]


def test_last_writer_wins_and_the_loser_stays_in_history(databases):
    db = databases.new("box", "dev")
    records.put(db, "user", "u1", {"role": "learner", "display_name": "Amina"})
    records.put(db, "user", "u1", {"role": "learner", "display_name": "Amina B."})
    assert records.load(db, "user", "u1")["display_name"] == "Amina B."
    names = [op.payload.get("display_name") for op in records.history(db, "user", "u1")]
    assert names == ["Amina", "Amina B."]
    records.delete(db, "user", "u1")
    assert records.load(db, "user", "u1") is None
    assert records.load(db, "user", "u1", include_deleted=True)["display_name"] is None


def test_a_clock_that_goes_back_still_orders_writes(databases):
    db = databases.new("box", "dev")
    with records.write_tx(db):
        first = records.next_version(db, "dev", now_ms=2_000_000_000_000)
        second = records.next_version(db, "dev", now_ms=1_000_000_000_000)  # days back
    assert second > first


def test_a_resent_event_counts_once(databases):
    db = databases.new("box", "dev")
    payload = {"event_id": "e-1", "pack_id": "p", "node_id": "n", "type": "answer", "correct": True,
               "seconds": 30}
    assert records.event(db, "u1", payload) is not None
    assert records.event(db, "u1", payload) is None
    row = db.execute("SELECT answers, correct, seconds FROM progress").fetchone()
    assert row == (1, 1, 30)


def test_missed_questions_are_counted_by_the_fold_as_the_migration_counts_them(tmp_path):
    from passerelle.server.migrations import m0012_missed_questions

    db = new_box(tmp_path, "box", "dev")
    answers = [("u1", "n1", "q1", False), ("u1", "n1", "q1", False), ("u1", "n1", "q2", True),
               ("u1", "n1", None, False), ("u2", "n1", "q2", False), ("u2", "n2", 3, False),
               ("u2", "n3", "q1", True), ("u2", "n2", "q9", None)]
    for i, (learner, node, question, correct) in enumerate(answers):
        payload = {"event_id": f"e{i}", "pack_id": "p", "node_id": node, "type": "answer",
                   "question_id": question}
        if correct is not None:  # an answer that does not say whether it was right is not missed
            payload["correct"] = correct
        records.event(db, learner, payload)
    read = "SELECT learner_uuid, node_id, question_id, wrong FROM missed_questions ORDER BY 1, 2, 3"
    folded = db.execute(read).fetchall()
    assert folded == [("u1", "n1", "", 1), ("u1", "n1", "q1", 2), ("u2", "n1", "q2", 1),
                      ("u2", "n2", "3", 1)]
    with records.write_tx(db):  # a box upgraded from before the table: counted from its log
        db.execute("DROP TABLE missed_questions")
        m0012_missed_questions(db)
    assert db.execute(read).fetchall() == folded
