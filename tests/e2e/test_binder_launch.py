"""Repository launches (issue 7) in a real browser: the picker's "Build from a git repository"
section, the build's progress on the progress page, JupyterLab showing the repository's files, a
mybinder-style link asking for confirmation and then opening a notebook, a refused host's error
page, and the section's labels and validation.

The sandbox hub turns repository launches on when the sandbox has its git server and registry; the
build pod runs the sandbox builder, which pushes the repository's files as an image.
"""

from __future__ import annotations

import re
import urllib.parse

import pytest
import requests
from playwright.sync_api import expect

from cern_spawner.binder.images import image_name
from sandbox.builder import oci
from tests.e2e.conftest import SECONDS, catalog_with, hub_with, screenshot, sso_login, stop_server
from tests.waiting import wait_until

pytestmark = pytest.mark.shares("user-bob", "binder-builds")

# The texts of the progress page's log items as they appear, handed to Python: the page reloads
# into the server once it is ready, and its log goes with it.
RECORD_PROGRESS = """
new MutationObserver(function (mutations) {
  mutations.forEach(function (mutation) {
    mutation.addedNodes.forEach(function (node) {
      if (node.nodeName === "LI" && node.parentElement && node.parentElement.id === "cern-log") {
        window.e2eLogItem(node.querySelector("span").textContent);
      }
    });
  });
}).observe(document, { childList: true, subtree: true });
"""
USER = "bob"
LAB = re.compile(rf"/user/{USER}/lab")


@pytest.fixture(scope="module")
def binder_hub(sandbox, tmp_path_factory):
    assert sandbox.get("git") and sandbox.get("registry"), (
        f"the sandbox records no git server or registry: {sorted(sandbox)}"
    )
    catalog = catalog_with(tmp_path_factory.mktemp("profiles"), {})
    hub = hub_with(tmp_path_factory.mktemp("binder-hub"), catalog)
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def repo(sandbox) -> dict:
    """The sandbox's `requirements` repository: url, branch, tag, commit."""
    return sandbox["git"]["repos"]["requirements"]


def delete_image(sandbox, repo: dict) -> None:
    """Remove the image of the repository's HEAD from the sandbox registry (it outlives test runs on
    a reused sandbox), so that the launch has to build it."""
    image = image_name(sandbox["registry"]["host"], "binder-", repo["url"], repo["commit"])
    oci.delete(requests.Session(), oci.parse_reference(image))


def record_visits(page) -> list[str]:
    """Every URL the page shows (redirects passed through are not shown, hence not listed)."""
    visits: list[str] = []
    page.on("framenavigated", lambda frame: visits.append(frame.url) if frame == page.main_frame else None)
    return visits


def record_progress(page) -> list[str]:
    items: list[str] = []
    page.expose_function("e2eLogItem", lambda text: items.append(text))
    page.add_init_script(RECORD_PROGRESS)
    return items


def binder_link(hub, url: str, ref: str, **query) -> str:
    spec = f"git/{urllib.parse.quote(url, safe='')}/{ref}"
    return f"{hub.url}/hub/binder/v2/{spec}" + (f"?{urllib.parse.urlencode(query)}" if query else "")


def servers_of(hub, user: str) -> dict:
    return hub.api("GET", f"/users/{user}").json()["servers"]


def stopped(hub, user: str) -> None:
    """Stop the user's server and wait until it is gone: a link opened while it is still stopping
    is refused ("wait a moment"), and the next test must not see it."""
    stop_server(hub, user)

    def gone():
        model = hub.api("GET", f"/users/{user}").json()
        return not model["servers"] and model["pending"] is None

    wait_until(gone, timeout=90, what=f"{user}'s server to stop")


def new_user(hub, user: str) -> None:
    """Forget the user: the picker opens the repository section, filled in, for whoever launched a
    repository last time, and these tests want the page a first-time user sees."""
    if hub.api("GET", f"/users/{user}").status_code == 404:
        return
    stopped(hub, user)
    response = hub.api("DELETE", f"/users/{user}")
    assert response.status_code == 204, response.text


def open_spawn_page(page, hub) -> None:
    page.goto(f"{hub.url}/hub/spawn")
    expect(page.locator("#cern-picker")).to_be_visible()


def current_notebook(page):
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")


def test_bob_builds_a_repository_from_the_picker_and_jupyterlab_shows_its_notebook(
    binder_hub, sandbox, repo, page
):
    delete_image(sandbox, repo)
    new_user(binder_hub, USER)
    progress = record_progress(page)
    sso_login(page, binder_hub, USER)
    try:
        open_spawn_page(page, binder_hub)
        section = page.locator("#cern-binder")
        summary = section.locator("summary")
        repo_field = page.get_by_label("Repository URL")
        expect(summary).to_have_text("Build from a git repository")
        assert section.evaluate("details => details.open") is False
        expect(repo_field).to_be_hidden()

        # Opened with the keyboard, as the summary is a focusable disclosure.
        summary.focus()
        page.keyboard.press("Enter")
        expect(repo_field).to_be_visible()
        assert section.evaluate("details => details.open") is True
        repo_field.fill(repo["url"])
        expect(page.get_by_label("Branch, tag or commit")).to_have_value("")  # HEAD
        # The catalog's default, a shared profile, stays chosen.
        expect(page.locator("#cern-group-shared input.cern-radio:checked")).to_have_count(1)
        expect(page.locator("#cern-group-dedicated input.cern-radio:checked")).to_have_count(0)
        screenshot(page, "binder-picker.png")

        page.get_by_role("button", name="Start").click()
        page.wait_for_url(re.compile(rf"/hub/spawn-pending/{USER}"))
        log = page.locator("#cern-log")
        resolved = f"Resolved HEAD of {repo['url']} to {repo['commit'][:12]}"
        expect(log.locator("li", has_text=resolved)).to_be_visible(timeout=60 * SECONDS)
        expect(log.locator("li", has_text="Building the image (build pod binder-build-")).to_be_visible(
            timeout=60 * SECONDS
        )
        # A line of the build pod's own log: the sandbox builder runs repo2docker's detection.
        expect(
            log.locator("li", has_text=re.compile(r"repo2docker .* would use the PythonBuildPack"))
        ).to_be_visible(timeout=120 * SECONDS)
        screenshot(page, "binder-progress.png")

        page.wait_for_url(LAB, timeout=180 * SECONDS)
        # In the order the page showed them: resolve, build, builder output, built, then the pod.
        order = [
            next(i for i, text in enumerate(progress) if marker in text)
            for marker in (
                resolved,
                "Building the image",
                "would use the PythonBuildPack",
                "Image built and pushed",
            )
        ]
        assert order == sorted(order), progress

        listing = page.locator(".jp-DirListing-content")
        expect(listing.get_by_text("hello.ipynb", exact=True)).to_be_visible(timeout=90 * SECONDS)
        for name in ("README.md", "requirements.txt"):
            expect(listing.get_by_text(name, exact=True)).to_be_visible()
        listing.get_by_text("hello.ipynb", exact=True).dblclick()
        notebook = current_notebook(page)
        expect(notebook.get_by_role("heading", name="Hello from the sandbox")).to_be_visible(
            timeout=60 * SECONDS
        )
        expect(notebook.locator(".jp-CodeCell .cm-content").first).to_contain_text(
            'print("hello from a Binder launch")'
        )
    finally:
        stopped(binder_hub, USER)


def test_a_launch_link_asks_first_then_opens_the_notebook_in_jupyterlab(binder_hub, repo, page):
    sso_login(page, binder_hub, USER)
    visits = record_visits(page)
    try:
        page.goto(binder_link(binder_hub, repo["url"], "main", labpath="hello.ipynb"))
        # The confirmation page: what will run, a plain warning, the tokens off; nothing started yet.
        expect(page.get_by_role("heading", name="Launch this repository?")).to_be_visible()
        expect(page.locator("#cern-confirm-repo")).to_have_text(repo["url"])
        expect(page.locator("#cern-confirm-ref")).to_have_text("main")
        expect(page.locator("#cern-confirm-profile")).not_to_be_empty()
        expect(page.locator("#cern-confirm-warning")).to_contain_text(
            "The repository's code will run as you."
        )
        tokens = page.get_by_label("Give this server my CERN tokens")
        expect(tokens).not_to_be_checked()
        expect(tokens).to_have_accessible_description(re.compile("act as you with them"))
        assert not servers_of(binder_hub, USER)
        screenshot(page, "binder-confirm.png")

        page.get_by_role("button", name="Launch").click()
        page.wait_for_url(re.compile(rf"/user/{USER}/lab/tree/hello\.ipynb"), timeout=240 * SECONDS)
        assert any(f"/hub/spawn-pending/{USER}" in url for url in visits), visits
        tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")
        expect(tab).to_have_text("hello.ipynb", timeout=90 * SECONDS)
        expect(current_notebook(page).get_by_role("heading", name="Hello from the sandbox")).to_be_visible(
            timeout=60 * SECONDS
        )
    finally:
        stopped(binder_hub, USER)


def test_a_link_to_a_host_off_the_allowlist_shows_why_it_is_refused(binder_hub, page):
    sso_login(page, binder_hub, USER)
    try:
        response = page.goto(f"{binder_hub.url}/hub/binder/v2/git/https%3A%2F%2Fevil.example%2Fr.git/main")
        assert response is not None and response.status == 403
        expect(page.get_by_role("heading", name="403 : Cannot launch this link")).to_be_visible()
        expect(page.get_by_text("Repositories on evil.example are not allowed on this hub.")).to_be_visible()
        expect(page.locator(".error")).to_contain_text(
            "Ask the hub's administrators to add evil.example to the allowed git hosts"
        )
        assert not servers_of(binder_hub, USER)
    finally:
        stopped(binder_hub, USER)


def test_the_repository_fields_are_labelled_and_an_invalid_url_keeps_the_form_here(binder_hub, page):
    new_user(binder_hub, USER)
    sso_login(page, binder_hub, USER)
    try:
        open_spawn_page(page, binder_hub)
        section = page.locator("#cern-binder")
        summary = section.locator("summary")
        summary.click()
        repo_field = page.get_by_label("Repository URL")
        ref_field = page.get_by_label("Branch, tag or commit")
        expect(repo_field).to_have_attribute("name", "binder_repo")
        expect(repo_field).to_have_attribute("type", "url")
        expect(ref_field).to_have_attribute("name", "binder_ref")
        expect(repo_field).to_have_accessible_description(re.compile("Leave it empty to start the profile"))
        expect(ref_field).to_have_accessible_description(re.compile(r"default branch \(HEAD\)"))
        tokens = page.get_by_label("Give this server my CERN tokens")
        expect(tokens).not_to_be_checked()
        expect(tokens).to_have_attribute("name", "binder_tokens")

        repo_field.fill("not a repository address")
        # Closed again before the start: the browser could not point at the field inside it.
        summary.click()
        expect(repo_field).to_be_hidden()
        page.evaluate("window.e2eSamePage = true")
        page.get_by_role("button", name="Start").click()

        expect(repo_field).to_be_visible()  # picker.js opened the section
        assert section.evaluate("details => details.open") is True
        assert repo_field.evaluate("field => field.validity.typeMismatch") is True
        expect(repo_field).to_be_focused()
        assert page.evaluate("window.e2eSamePage") is True
        assert re.search(r"/hub/spawn$", page.url), page.url
        assert not servers_of(binder_hub, USER)
    finally:
        stopped(binder_hub, USER)
