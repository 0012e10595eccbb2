"""Fixtures of the browser tests: Debian's chromium driven by Playwright (sync API), a test hub per
module, and helpers to log in through the sandbox's Keycloak as a person would.

The tests are synchronous on purpose: pytest-asyncio (auto mode) leaves plain functions alone, and
Playwright's sync API refuses to run inside a running event loop.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from sandbox.hubrunner import start_hub
from tests.integration.growth import GROUP, reset_timings, set_timings

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "build" / "e2e-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium dials out at start, which this machine refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "cern-demo"
# A spawn that takes longer than JupyterHub's slow_spawn_timeout (10 s) shows the progress page; a
# faster one jumps straight to the server. The tests want the progress page every time.
HUB_EXTRA = (
    "c.CERNSpawner.scaling_interval = 1\n"
    "c.CERNSpawner.scaling_grace_period = 5\n"
    "c.JupyterHub.tornado_settings = {'slow_spawn_timeout': 0}\n"
)
SECONDS = 1000  # Playwright counts in milliseconds


# Per module, not per session: while Playwright's sync API is open, an event loop counts as running
# in this thread, and every async test collected after the browser tests would fail to start.
@pytest.fixture(scope="module")
def browser():
    """Debian's chromium, headless; the tests fail (never skip) when it cannot start."""
    from playwright.sync_api import Error, sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make deps` installs Debian's chromium", pytrace=False)
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        except Error as e:
            pytest.fail(f"chromium did not start: {e}", pytrace=False)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    """A fresh browser context (no cookies) per test; a screenshot of where it ended on failure."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30 * SECONDS)
    page = context.new_page()
    yield page
    report = getattr(request.node, "e2e_call_report", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=ARTIFACTS / f"failed-{request.node.name}.png", full_page=True)
    context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.e2e_call_report = report
    return report


def screenshot(page, name: str) -> Path:
    """Save a screenshot under build/e2e-artifacts/ (gitignored) and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=path, full_page=True)
    return path


@pytest.fixture(scope="module")
def cloud(sandbox):
    """The OpenStack simulator, booting the A100 group's nodes fast; a GPU comes up a few seconds
    after its node joins, so that the progress page shows "joined" well before the server is ready.
    Only that group's timings: modules running beside this one keep theirs."""
    url = sandbox["openstack"]["url"]
    set_timings(url, GROUP, boot_delay=2, gpu_delay=4)
    yield url
    reset_timings(url, GROUP)


def catalog_with(directory: Path, extra: dict[str, str]) -> Path:
    """The seed's profiles/default.yaml plus `extra` files ({name: YAML})."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "profiles" / "default.yaml", directory / "default.yaml")
    for name, text in extra.items():
        (directory / name).write_text(text)
    return directory


def hub_with(directory: Path, catalog: Path):
    try:
        return start_hub(directory, HUB_EXTRA, env={"CERN_PROFILES": str(catalog)})
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)


def sso_login(page, hub, username: str) -> None:
    """Log in as a person does: the hub's login page, "Sign in with CERN SSO", Keycloak's form."""
    from playwright.sync_api import expect

    page.goto(f"{hub.url}/hub/login")
    page.get_by_role("button", name="Sign in with CERN SSO").click()
    page.locator("#username").fill(username)
    page.locator("#password").fill(PASSWORD)
    page.locator("#kc-login").click()
    page.wait_for_url(re.compile(re.escape(f"{hub.url}/hub/")))
    expect(page.locator("#cern-picker")).to_be_visible()


def stop_server(hub, username: str) -> None:
    response = hub.api("DELETE", f"/users/{username}/server")
    assert response.status_code in (202, 204, 400), response.text  # 400: no server running
