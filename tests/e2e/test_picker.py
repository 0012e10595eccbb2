"""The profile picker in a real browser: disabled GPU cards say why, availability follows the
cluster without a reload, and the page works with the keyboard."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import SECONDS, catalog_with, hub_with, screenshot, sso_login, stop_server
from tests.waiting import wait_until

pytestmark = pytest.mark.shares("gpu-a100", "gpu-v100", "user-alice")

# A GPU profile anyone may use, on a group the hub may not grow (max 0 nodes) and that has none.
CLOSED = """
node_groups:
  gpu-a100:
    gpu: {resource: nvidia.com/gpu, per_node: 4, product: NVIDIA-A100-SXM4-40GB}
    taint: {key: nvidia.com/gpu, value: present, effect: NoSchedule}
    scaling: {backend: magnum, cluster: sandbox, mode: resize, min_nodes: 0, max_nodes: 0}
profiles:
  - slug: a100-closed
    display_name: "Dedicated 1 A100 GPU (for everyone)"
    kind: dedicated
    cpu: 0.5
    memory: 1G
    gpus: 1
    node_group: gpu-a100
"""
V100 = "gpu-v100"


@pytest.fixture(scope="module")
def picker_hub(sandbox, cloud, tmp_path_factory):
    catalog = catalog_with(tmp_path_factory.mktemp("profiles"), {"closed.yaml": CLOSED})
    hub = hub_with(tmp_path_factory.mktemp("picker-hub"), catalog)
    yield hub
    hub.stop()


def availability(page, slug):
    return page.locator(f"#profile-availability-{slug}")


def test_a_gpu_card_that_cannot_start_is_disabled_with_its_reason_and_a_shared_profile_starts(
    picker_hub, page
):
    sso_login(page, picker_hub, "alice")
    radio = page.locator("#profile-item-a100-closed")
    card = page.locator(".cern-card[data-slug=a100-closed]")
    expect(card).to_be_visible()
    # Disabled once the scaling controller has looked at the group (at the latest by the next poll).
    expect(radio).to_be_disabled(timeout=30 * SECONDS)
    expect(card).to_have_class(re.compile(r"\bis-disabled\b"))
    line = availability(page, "a100-closed")
    expect(line).to_contain_text("Unavailable: GPU limit reached")
    expect(line.locator(".cern-availability-reason")).to_contain_text("no more GPU nodes may be added")
    expect(line).to_be_visible()
    # The reason is read with the radio: it describes it.
    described_by = radio.get_attribute("aria-describedby").split()
    assert "profile-availability-a100-closed" in described_by
    expect(radio).to_have_accessible_description(
        re.compile("Unavailable: GPU limit reached.*no more GPU nodes may be added")
    )
    # alice has no gpu-users role: the V100 profile is not offered to her at all.
    expect(page.locator("#profile-item-gpu-1")).to_have_count(0)
    screenshot(page, "picker-alice.png")

    try:
        page.locator("label[for=profile-item-shared-1g]").click()
        expect(page.locator("#profile-item-shared-1g")).to_be_checked()
        page.get_by_role("button", name=re.compile("Start")).click()
        page.wait_for_url(re.compile(r"/user/alice/lab"), timeout=120 * SECONDS)
        expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=90 * SECONDS)
    finally:
        stop_server(picker_hub, "alice")


def gpu_taker(namespace: str, gpus: int) -> dict:
    """A pod on the V100 group holding `gpus` GPUs, as another user's server would."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"e2e-gpu-taker-{uuid.uuid4().hex[:6]}", "namespace": namespace},
        "spec": {
            "nodeSelector": {"magnum.openstack.org/nodegroup": V100},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "work",
                    "image": "jupyter/base-notebook",
                    "command": ["sleep", "600"],
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }
            ],
        },
    }


def test_the_gpu_count_follows_the_cluster_without_a_reload(picker_hub, page, core, sandbox):
    namespace = sandbox["user_namespace"]
    sso_login(page, picker_hub, "bob")
    line = availability(page, "gpu-1")
    expect(line).to_contain_text("4 of 4 GPUs free", timeout=30 * SECONDS)
    # A mark on this page: it is gone if the page reloads.
    page.evaluate("window.e2eSamePage = true")

    pod = core.create_namespaced_pod(namespace, gpu_taker(namespace, 3))
    try:
        expect(line).to_contain_text("1 of 4 GPUs free", timeout=30 * SECONDS)
        assert page.evaluate("window.e2eSamePage") is True
        screenshot(page, "picker-bob-gpus-taken.png")
    finally:
        core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)
    # And back once it is released.
    expect(line).to_contain_text("4 of 4 GPUs free", timeout=30 * SECONDS)
    assert page.evaluate("window.e2eSamePage") is True
    wait_until(
        lambda: (
            not [p for p in core.list_namespaced_pod(namespace).items if p.metadata.name == pod.metadata.name]
        ),
        timeout=60,
        what="the GPU-taking pod to go",
    )


def test_the_picker_works_with_the_keyboard(picker_hub, page):
    sso_login(page, picker_hub, "bob")
    radios = page.locator("input.cern-radio[name=profile]")
    expect(page.locator("#profile-item-shared-2g")).to_be_checked()  # the catalog's default

    # Tab from the top of the page reaches the chosen radio of the group.
    focused_radio = None
    for _ in range(40):
        page.keyboard.press("Tab")
        focused_radio = page.evaluate(
            "document.activeElement.matches('input.cern-radio') ? document.activeElement.id : null"
        )
        if focused_radio:
            break
    assert focused_radio == "profile-item-shared-2g", "Tab never reached the profile radios"
    # Focus is visible: an outline drawn around the focused radio's card.
    outline = page.evaluate("getComputedStyle(document.activeElement.closest('.cern-card')).outlineStyle")
    assert outline not in ("", "none"), outline

    page.keyboard.press("ArrowDown")
    expect(page.locator("#profile-item-shared-4g")).to_be_checked()
    expect(page.locator("#profile-item-shared-4g")).to_be_focused()
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    expect(page.locator("#profile-item-shared-1g")).to_be_checked()
    assert radios.count() >= 4
    screenshot(page, "picker-keyboard.png")


def test_cards_of_unequal_length_keep_their_details_under_the_title(picker_hub, page):
    # Cards side by side are stretched to the same height; the extra room goes below the content,
    # not between the title and the details.
    sso_login(page, picker_hub, "bob")
    gaps = page.evaluate(
        """Array.from(document.querySelectorAll('.cern-card')).map(function (card) {
             var title = card.querySelector('.cern-card-title').getBoundingClientRect();
             var details = card.querySelector('.cern-details').getBoundingClientRect();
             return Math.round(details.top - title.bottom);
           })"""
    )
    assert len(set(gaps)) == 1, gaps
