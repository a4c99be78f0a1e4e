"""The box's label: its Wi-Fi and address with a QR code, printed and stuck on the box or
on the classroom wall, so a learner joins without anyone typing an address."""

from __future__ import annotations

from flask import current_app, render_template
from passerelle.kiosk import bp
from passerelle.kiosk.manage.common import STAFF
from passerelle.server.db import get_db
from passerelle.server.people import accounts
from passerelle.server.web import captive, network
from passerelle.server.web.auth import allow


@bp.get("/manage/label")
@allow(*STAFF)
def manage_label():
    answer = network.last_result(current_app.config["HOME"].root) or {}
    return render_template("manage/label.html", org=accounts.organisation(get_db()) or {},
                           box_url=captive.BOX_URL, wifi_name=answer.get("wifi_name"))
