"""The session cookie: plain compact JSON, signed with the box's key."""

import pytest
from flask.sessions import SecureCookieSessionInterface
from passerelle.server.web.auth import CompactSessionInterface


def test_the_cookie_round_trips_what_the_pages_keep(app):
    signer = CompactSessionInterface().get_signing_serializer(app)
    value = {"sid": "t" * 43, "seen_at": 1765000000, "_permanent": True, "language": "ar",
             "_flashes": [["message", "Votre boîte est prête"]],
             "practice": {"0123456789ab": {"k": "abc", "q": 5, "f": [1, "41 €", 0], "g": {}}}}
    assert signer.loads(signer.dumps(value)) == value


def test_a_cookie_from_before_the_change_is_still_read(app):
    """Tablets may hold a cookie written by Flask's tagged serializer (a flashed message is a
    tuple there); it is read as it was written, not lost."""
    old = SecureCookieSessionInterface().get_signing_serializer(app).dumps(
        {"_flashes": [("message", "hi")], "sid": "abc"})
    assert CompactSessionInterface().get_signing_serializer(app).loads(old) == {
        "_flashes": [("message", "hi")], "sid": "abc"}


def test_a_typed_answer_that_looks_like_a_tag_stays_text(app):
    signer = CompactSessionInterface().get_signing_serializer(app)
    value = {"practice": {"a": {"f": [0, '{" t": ["x"]}', 0]}}}
    assert signer.loads(signer.dumps(value)) == value


def test_a_value_json_cannot_hold_fails_loudly(app):
    signer = CompactSessionInterface().get_signing_serializer(app)
    with pytest.raises(TypeError):
        signer.dumps({"when": object()})


def test_flashed_messages_survive_the_redirect(as_user):
    client = as_user("cora")
    with client.session_transaction() as session:
        session["_flashes"] = [("message", "Kept across the redirect")]
    assert "Kept across the redirect" in client.get("/manage").get_data(as_text=True)
