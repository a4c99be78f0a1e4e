"""Every page staff open on a programme's hub, whose records are on PostgreSQL, answers
without a server error (the same SQL runs on both engines; SQLite's own functions do not
exist there)."""

import pytest
from passerelle.server import db as dbmod
from passerelle.server.web.auth import ANYONE, SIGNED_IN

from tests.server.test_permissions import ROLE_OF, routes, values_for


@pytest.fixture
def box(request, tmp_path):
    from tests.conftest import postgresql_box

    return postgresql_box(request, tmp_path)


@pytest.mark.parametrize("who", ["fatou", "cora"])
def test_every_page_answers_on_a_hub_on_postgresql(app, box, as_user, who):
    client = as_user(who)
    values = values_for(box.ids, app, dbmod.connect(app.config["DB_PATH"]))
    failed = []
    for rule, method, view in routes(app):
        allowed = view.allowed
        if method != "GET" or rule.endpoint == "kiosk.signout" or not (
                ROLE_OF[who] in allowed or ANYONE in allowed or SIGNED_IN in allowed):
            continue
        path = rule.build(values, append_unknown=False)[1]
        status = client.get(path).status_code
        if status >= 500:
            failed.append(f"{path}: {status}")
    assert not failed, failed
