"""Real headless Chromium (Debian's package) driven by Playwright; never a downloaded browser.

Every page runs with a request guard: any request to a host other than the box
fails the test. A failing test leaves a screenshot in test-artifacts/.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = os.environ.get("PASSERELLE_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# Flags that keep Chromium from calling home (the machine's network is closed anyway).
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-features=Translate,OptimizationHints,MediaRouter"]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def page_factory(browser, request):
    """New pages in fresh contexts (a fresh tablet each), guarded against outside requests."""
    contexts, outside = [], []

    def make(base_url: str, locale: str = "fr-BE", **kwargs):
        context = browser.new_context(locale=locale, base_url=base_url, **kwargs)
        box = urlsplit(base_url).netloc

        def guard(route):
            if urlsplit(route.request.url).netloc not in (box, ""):
                outside.append(route.request.url)
                return route.abort()
            return route.continue_()

        context.route(re.compile(r"^(https?|wss?)://"), guard)
        contexts.append(context)
        return context.new_page()

    yield make
    failed = getattr(request.node, "report_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        for i, context in enumerate(contexts):
            for j, page in enumerate(context.pages):
                page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-{i}-{j}.png"), full_page=True)
    for context in contexts:
        context.close()
    assert not outside, f"the page requested hosts other than the box: {outside}"
