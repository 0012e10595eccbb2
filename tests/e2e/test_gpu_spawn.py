"""bob's whole day in a browser: CERN SSO, the picker, a GPU node grown for him on the progress
page, a cell run in JupyterLab, and the node given back once he stops."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import SECONDS, catalog_with, hub_with, screenshot, sso_login, stop_server
from tests.integration.growth import A100, GROUP, group_state
from tests.waiting import wait_until

pytestmark = pytest.mark.shares("gpu-a100", "user-bob")

# Every item the progress page appends to its log, recorded as it appears: the page reloads into
# the server when it is ready, and its log goes with it.
RECORD_LOG = """
new MutationObserver(function (mutations) {
  mutations.forEach(function (mutation) {
    mutation.addedNodes.forEach(function (node) {
      if (node.nodeName === "LI" && node.parentElement && node.parentElement.id === "cern-log") {
        window.e2eProgress(node.querySelector("time").textContent, node.querySelector("span").textContent);
      }
    });
  });
}).observe(document, { childList: true, subtree: true });
"""


@pytest.fixture(scope="module")
def growth_hub(sandbox, cloud, tmp_path_factory):
    catalog = catalog_with(tmp_path_factory.mktemp("profiles"), {"a100.yaml": A100})
    hub = hub_with(tmp_path_factory.mktemp("growth-hub"), catalog)
    yield hub
    hub.stop()


def seconds(clock: str) -> int:
    minutes, secs = clock.split(":")
    return int(minutes) * 60 + int(secs)


def test_bob_grows_a_gpu_node_runs_a_cell_and_the_node_goes_when_he_stops(growth_hub, cloud, page):
    assert group_state(cloud)["node_count"] == 0, "gpu-a100 must start empty"
    progress: list[tuple[str, str]] = []
    page.expose_function("e2eProgress", lambda time, text: progress.append((time, text)))
    page.add_init_script(RECORD_LOG)

    sso_login(page, growth_hub, "bob")
    try:
        card = page.locator("#profile-availability-a100-1")
        expect(card).to_contain_text(
            re.compile(r"No GPU free now: a new (GPU node will be started|node takes about \d+)"),
            timeout=30 * SECONDS,
        )
        page.locator("label[for=profile-item-a100-1]").click()
        expect(page.locator("#profile-item-a100-1")).to_be_checked()
        page.get_by_role("button", name=re.compile("Start")).click()

        page.wait_for_url(re.compile(r"/hub/spawn-pending/bob"))
        log = page.locator("#cern-log")
        expect(log.locator("li", has_text="A new GPU node is starting")).to_be_visible(timeout=60 * SECONDS)
        # The node's GPU comes up a few seconds after it joins: time for a picture of the page.
        expect(log.locator("li", has_text="The node joined; its GPU is being prepared")).to_be_visible(
            timeout=60 * SECONDS
        )
        # The scheduler's own words are folded away under the phase they explain.
        expect(log.locator("details").first).to_be_attached()
        screenshot(page, "progress-bob-a100.png")

        page.wait_for_url(re.compile(r"/user/bob/lab"), timeout=180 * SECONDS)
        texts = [text for _, text in progress]
        requested = next(i for i, t in enumerate(texts) if t.startswith("A new GPU node is starting"))
        joined = texts.index("The node joined; its GPU is being prepared")
        assert requested < joined, texts
        assert not [t for t in texts if GROUP in t], texts  # users read their profile, not the group
        times = [seconds(time) for time, _ in progress]
        assert all(re.fullmatch(r"\d+:\d\d", time) for time, _ in progress), progress
        assert times == sorted(times), progress
        assert times[joined] >= 2, progress  # the simulator's boot delay

        run_a_cell(page)
        screenshot(page, "jupyterlab-bob.png")
    finally:
        stop_server(growth_hub, "bob")
    wait_until(lambda: group_state(cloud)["node_count"] == 0, timeout=90, what="gpu-a100 back at 0 nodes")


def run_a_cell(page) -> None:
    """A new notebook from JupyterLab's Launcher, `print(6*7)`, Shift+Enter, and its output."""
    launcher = page.locator(".jp-Launcher")
    expect(launcher).to_be_visible(timeout=90 * SECONDS)
    launcher.locator(".jp-LauncherCard[data-category=Notebook]").first.click()
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    expect(notebook).to_be_visible()
    # The kernel must be connected and idle (the status bar says so) before the cell runs: a cell
    # run while the notebook has no kernel yet is not run at all.
    kernel = page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"Python 3 \(ipykernel\) \| Idle"))
    expect(kernel).to_be_visible(timeout=90 * SECONDS)
    editor = notebook.locator(".jp-Cell .cm-content").first
    editor.click()
    page.keyboard.type("print(6*7)")
    page.keyboard.press("Shift+Enter")
    output = notebook.locator(".jp-OutputArea-output").first
    expect(output).to_have_text("42", timeout=60 * SECONDS)
