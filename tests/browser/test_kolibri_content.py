"""A coordinator finds a Kolibri channel on a USB drive, ticks topics (the total size follows), imports them."""

import base64
import os
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "content"))

from kolibri_channel import CHANNEL, PNG, hexid, standard  # noqa: E402

from tests.browser.conftest import ARTIFACTS  # noqa: E402
from tests.conftest import PASSWORDS  # noqa: E402

pytestmark = pytest.mark.browser


def test_a_coordinator_imports_ticked_topics_of_a_kolibri_channel(server_factory, page_factory, tmp_path):
    media = tmp_path / "media"
    ex, ids = standard(media / "usb0" / "KOLIBRI_DATA")
    film = ex.node(hexid("film"), ids["topic"], "video", "A longer film", order=3)
    ex.file(film, "low_res_video", os.urandom(600_000), "mp4")  # sizes worth showing in MB
    ex.db.execute("UPDATE content_channelmetadata SET thumbnail = ?",
                  ["data:image/png;base64," + base64.b64encode(PNG).decode()])
    ex.save()
    server = server_factory({"PASSERELLE_USB_ROOTS": str(media)})
    page = page_factory(server.url, locale="en-GB")
    page.goto("/signin/staff")
    page.get_by_label("Username").fill("cora")
    page.get_by_label("Password").fill(PASSWORDS["cora"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/manage")

    page.goto("/manage/content")
    channel = page.locator("li.channel", has_text="Test channel")
    assert "Français" in channel.inner_text() and "Version 3" in channel.inner_text()
    assert channel.locator("img.channel-thumb").evaluate("img => img.naturalWidth") == 1  # the channel's own
    channel.get_by_role("link", name="Choose topics").click()
    page.wait_for_url(re.compile(r".*/manage/content/kolibri\?.*"))

    total = page.locator("#kolibri-total")
    assert total.inner_text() == "0 byte"
    numbers = page.get_by_label(re.compile("^Numbers"))
    assert int(numbers.get_attribute("data-size")) > 600_000
    # The topic's size as the page writes it (Babel's words and digits), then added up by the script.
    shown = re.search(r"\((.+?), \d+ resources\)", page.locator("li.topic", has=numbers).inner_text()).group(1)
    numbers.check()
    assert total.inner_text() == shown and shown.endswith("kB")
    page.get_by_label(re.compile("^Other things")).check()
    page.get_by_label(re.compile("^Other things")).uncheck()
    assert total.inner_text() == shown
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "kolibri-topics.png"), full_page=True)

    page.get_by_role("button", name="Import the selected topics").click()
    page.wait_for_url("**/manage/content")
    # The page follows the import while it runs.
    page.locator("li.job.done").wait_for(timeout=120_000)
    assert "Test channel" in page.locator("li.job.done").inner_text()
    page.reload()
    installed = page.locator("section", has_text="Installed packs")
    assert f"kolibri-{CHANNEL}" in installed.inner_text()
    page.screenshot(path=str(ARTIFACTS / "kolibri-content.png"), full_page=True)
