"""The profile picker, rendered by KubeSpawner's own form path with our template."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
from jinja2 import Environment, FileSystemLoader
from traitlets.config import Config

from cern_spawner import CERNSpawner
from cern_spawner.bounded import Bounded
from cern_spawner.catalog import load_catalog
from cern_spawner.web import PICKER_TEMPLATE_DIR
from cern_spawner.web import picker as picker_module
from cern_spawner.web.cards import with_availability, with_cards
from cern_spawner.web.picker import render_picker

pytestmark = [pytest.mark.unit, pytest.mark.asyncio(loop_scope="function")]

PROFILES_DIR = Path(__file__).resolve().parents[2] / "profiles"
CATALOG = load_catalog([PROFILES_DIR])
SHARED = ["shared-1g", "shared-2g", "shared-4g"]
BLOCKED = {
    "state": "blocked",
    "text": "Unavailable: GPU limit reached",
    "reason": "No GPU is free in gpu-v100 and it is at its maximum of 4 node(s).",
    "disabled": True,
}


@pytest.fixture(autouse=True)
def no_kube_config_and_fresh_forms(monkeypatch):
    monkeypatch.setattr("kubespawner.spawner.load_config", lambda **kwargs: None)
    # CERNSpawner keeps rendered forms per process; other tests render KubeSpawner's own template.
    monkeypatch.setattr(CERNSpawner, "_form_cache", Bounded(max_entries=1024))


def make_spawner(roles=(), saved=None):
    c = Config()
    c.CERNSpawner.profiles_path = [str(PROFILES_DIR)]
    c.CERNSpawner.additional_profile_form_template_paths = [PICKER_TEMPLATE_DIR]
    spawner = CERNSpawner(_mock=True, config=c)
    spawner.user.groups = [SimpleNamespace(name=role) for role in roles]
    spawner.user.admin = False
    spawner.user_options = saved or {}
    return spawner


async def render(roles=(), saved=None, edit=lambda profiles: profiles):
    """The picker as KubeSpawner renders it, for the profiles offered to `roles`, with cards."""
    spawner = make_spawner(roles, saved)
    offered = with_cards(CATALOG, await spawner.offered_profile_list())
    return Page(spawner._render_options_form(edit(offered)))


class Page(HTMLParser):
    """The elements of a rendered form: attributes by id, radios with the legend they sit under."""

    def __init__(self, html: str):
        super().__init__()
        self.html = html
        self.by_id: dict[str, dict] = {}
        self.radios: list[dict] = []
        self.labels_for: set[str] = set()
        self.legends: list[str] = []
        self._legend: str | None = None
        self._in_legend = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        attrs["_tag"] = tag
        if "id" in attrs:
            self.by_id[attrs["id"]] = attrs
        if tag == "legend":
            self._in_legend = True
        if tag == "label" and "for" in attrs:
            self.labels_for.add(attrs["for"])
        if tag == "input" and attrs.get("type") == "radio":
            self.radios.append({**attrs, "_group": self._legend})

    def handle_endtag(self, tag):
        if tag == "legend":
            self._in_legend = False
        if tag == "fieldset":
            self._legend = None

    def handle_data(self, data):
        if self._in_legend:
            self._legend = data.strip()
            self.legends.append(self._legend)

    def group_of(self, slug):
        return next(r["_group"] for r in self.radios if r["value"] == slug)

    @property
    def checked(self):
        return [r["value"] for r in self.radios if "checked" in r]


@pytest.mark.parametrize(
    ("roles", "groups"),
    [
        pytest.param((), {"Shared": SHARED}, id="no-roles"),
        pytest.param(("gpu-users",), {"Shared": SHARED, "Dedicated GPU": ["gpu-1"]}, id="gpu-users"),
    ],
)
async def test_cards_are_grouped_by_kind(roles, groups):
    page = await render(roles)
    assert page.legends == list(groups)
    for legend, slugs in groups.items():
        assert [r["value"] for r in page.radios if r["_group"] == legend] == slugs


async def test_every_radio_is_labelled_and_described():
    page = await render(("gpu-users",))
    assert page.radios
    for radio in page.radios:
        assert radio["name"] == "profile"
        assert radio["id"] in page.labels_for
        described = radio["aria-describedby"].split()
        assert described == [f"profile-details-{radio['value']}", f"profile-availability-{radio['value']}"]
        assert all(element in page.by_id for element in described)
    assert page.by_id["cern-picker-announce"]["aria-live"] == "polite"


async def test_cards_say_cpu_memory_gpu_and_description():
    page = await render(("gpu-users",))
    gpu = page.html[page.html.index('data-slug="gpu-1"') :]
    assert "<dt>CPU</dt><dd>2 CPU cores</dd>" in gpu
    assert "<dt>Memory</dt><dd>4 GiB</dd>" in gpu
    assert "<dt>GPU</dt><dd>1 GPU, Tesla V100 PCIE 32GB</dd>" in gpu
    assert "One whole NVIDIA V100 GPU" in gpu
    shared = page.html[page.html.index('data-slug="shared-2g"') :]
    assert "<dd>0.2 CPU cores guaranteed, up to 1 CPU core</dd>" in shared
    assert "<dd>1 GiB guaranteed, up to 2 GiB</dd>" in shared


@pytest.mark.parametrize(
    ("saved", "roles", "checked"),
    [
        pytest.param({}, (), ["shared-2g"], id="nothing-saved-default"),
        pytest.param({"profile": "shared-4g"}, (), ["shared-4g"], id="saved-profile"),
        pytest.param({"profile": "removed-from-yaml"}, (), ["shared-2g"], id="saved-profile-removed"),
        pytest.param({"profile": "gpu-1"}, (), ["shared-2g"], id="saved-profile-role-lost"),
        pytest.param({"profile": "gpu-1"}, ("gpu-users",), ["gpu-1"], id="saved-gpu-with-role"),
    ],
)
async def test_the_last_valid_choice_is_preselected(saved, roles, checked):
    # Through CERNSpawner's whole form path (saved options checked first); its dicts have no cards,
    # so this also covers the template's fallback grouping.
    spawner = make_spawner(roles, saved)
    form = await spawner._render_options_form_dynamically(spawner)
    page = Page(form)
    assert page.checked == checked
    # The pattern existing tests and KubeSpawner's own form use for a checked radio.
    assert re.findall(r'value="([^"]+)"\s+checked', form) == checked
    assert page.group_of("shared-2g") == "Shared"
    if "gpu-users" in roles:
        assert page.group_of("gpu-1") == "Dedicated GPU"


async def test_shared_profiles_render_available_and_gpu_ones_wait_for_the_script():
    page = await render(("gpu-users",))
    assert page.by_id["profile-availability-shared-2g"]["data-state"] == "available"
    assert page.by_id["profile-availability-gpu-1"]["data-state"] == ""


async def test_a_rendered_blocked_verdict_disables_the_card_and_says_why():
    page = await render(
        ("gpu-users",),
        saved={"profile": "gpu-1"},
        edit=lambda profiles: with_availability(profiles, {"profiles": {"gpu-1": BLOCKED}}),
    )
    radio = page.by_id["profile-item-gpu-1"]
    assert "disabled" in radio
    assert 'class="cern-card is-disabled" data-slug="gpu-1"' in page.html
    assert page.by_id["profile-availability-gpu-1"]["data-state"] == "blocked"
    assert "Unavailable: GPU limit reached" in page.html
    assert BLOCKED["reason"] in page.html
    # The saved choice cannot start: the default is preselected instead, never a disabled radio.
    assert page.checked == ["shared-2g"]


async def test_image_choices_preselect_the_saved_one_and_are_escaped():
    def with_images(profiles):
        gpu = next(p for p in profiles if p["slug"] == "gpu-1")
        gpu["profile_options"] = {
            "image": {
                "display_name": "Image",
                "choices": {
                    "torch": {"display_name": "PyTorch <latest>", "default": True},
                    "tf": {"display_name": "TensorFlow"},
                },
            }
        }
        return profiles

    page = await render(("gpu-users",), saved={"profile": "gpu-1", "image": "tf"}, edit=with_images)
    select = page.by_id["profile-option-gpu-1--image"]
    assert select["name"] == "profile-option-gpu-1--image"
    assert "profile-option-gpu-1--image" in page.labels_for
    assert re.search(r'<option value="tf" selected>TensorFlow</option>', page.html)
    assert '<option value="torch">PyTorch &lt;latest&gt;</option>' in page.html


async def test_kubespawner_accepts_profiles_carrying_cards_and_verdicts():
    # The extra keys ride along to the template and are ignored when the profile is applied.
    spawner = make_spawner(("gpu-users",), {"profile": "gpu-1"})
    offered = with_cards(CATALOG, await spawner.offered_profile_list())
    spawner.profile_list = with_availability(offered, {"profiles": {"gpu-1": BLOCKED}})
    await spawner.load_user_options()
    assert spawner.extra_resource_limits == {"nvidia.com/gpu": "1"}


# --- "Build from a git repository" ------------------------------------------------------------

BINDER = {"enabled": True, "allowed_hosts": ["github.com", "gitlab.cern.ch"], "repo": "", "ref": ""}


async def render_with_binder(binder, roles=(), saved=None):
    """form.html with a `binder` variable, in an environment like KubeSpawner's (no autoescape)."""
    spawner = make_spawner(roles, saved)
    offered = spawner._get_initialized_profile_list(await spawner.offered_profile_list())
    env = Environment(loader=FileSystemLoader(PICKER_TEMPLATE_DIR))
    html = env.get_template("form.html").render(profile_list=offered, user_options=saved or {}, binder=binder)
    return Page(html)


@pytest.mark.parametrize(
    "binder",
    [
        pytest.param(None, id="not-given"),
        pytest.param({**BINDER, "enabled": False}, id="disabled"),
        pytest.param({}, id="empty"),
    ],
)
async def test_the_repository_section_is_hidden_unless_binder_is_on(binder):
    page = await render_with_binder(binder) if binder is not None else await render()
    assert "cern-binder" not in page.by_id
    assert "binder_repo" not in page.html


async def test_the_repository_section_is_labelled_described_and_closed_by_default():
    page = await render_with_binder(BINDER)
    details = page.by_id["cern-binder"]
    assert details["_tag"] == "details" and "open" not in details
    repo, ref = page.by_id["cern-binder-repo"], page.by_id["cern-binder-ref"]
    assert (repo["name"], repo["type"], repo["placeholder"]) == (
        "binder_repo",
        "url",
        "https://github.com/org/repo",
    )
    assert (ref["name"], ref["type"], ref["placeholder"]) == ("binder_ref", "text", "HEAD")
    assert repo["value"] == ref["value"] == ""
    for field in (repo, ref):
        assert field["id"] in page.labels_for
        assert "required" not in field  # empty means a plain launch
        assert all(element in page.by_id for element in field["aria-describedby"].split())
    assert "cern-binder-help" in repo["aria-describedby"].split()
    assert "Allowed hosts: github.com, gitlab.cern.ch." in page.html
    # Inside the picker, so the spawn form posts the fields with the chosen profile.
    assert page.html.index('id="cern-picker"') < page.html.index('id="cern-binder"')
    assert page.html.index('id="cern-binder"') < page.html.index("<script>")


async def test_saved_repository_values_prefill_and_open_the_section_escaped():
    repo = 'https://github.com/org/repo"><script>x</script>'
    page = await render_with_binder({**BINDER, "repo": repo, "ref": "feature/<b>"})
    assert "open" in page.by_id["cern-binder"]
    assert page.by_id["cern-binder-repo"]["value"] == repo  # HTMLParser unescapes attribute values
    assert page.by_id["cern-binder-ref"]["value"] == "feature/<b>"
    assert "<script>x</script>" not in page.html and "feature/<b>" not in page.html


async def test_saved_repository_options_keep_the_saved_profile_preselected():
    # check_user_options lets binder_repo/binder_ref through, so the saved profile is not dropped.
    saved = {"profile": "shared-4g", "binder_repo": "https://github.com/org/repo", "binder_ref": "main"}
    spawner = make_spawner((), saved)
    page = Page(await spawner._render_options_form_dynamically(spawner))
    assert page.checked == ["shared-4g"]


@pytest.mark.parametrize(
    "binder",
    [
        pytest.param(BINDER, id="first-visit"),
        pytest.param({**BINDER, "repo": "https://github.com/org/repo", "ref": "main"}, id="saved-repository"),
    ],
)
async def test_the_tokens_checkbox_is_labelled_and_off(binder):
    page = await render_with_binder(binder)
    box = page.by_id["cern-binder-tokens"]
    assert (box["_tag"], box["type"], box["name"], box["value"]) == (
        "input",
        "checkbox",
        "binder_tokens",
        "on",
    )
    assert "checked" not in box  # off on every visit, whatever was launched before
    assert box["id"] in page.labels_for
    assert "Give this server my CERN tokens" in page.html
    assert all(element in page.by_id for element in box["aria-describedby"].split())
    assert page.html.index('id="cern-binder"') < page.html.index('id="cern-binder-tokens"')


# --- rendering cost: one compiled template per process; the same page as plain Jinja ---------

PLAIN_JINJA = Environment(loader=FileSystemLoader(PICKER_TEMPLATE_DIR), autoescape=True)


@pytest.mark.parametrize(
    ("roles", "saved", "verdicts", "binder"),
    [
        pytest.param((), {}, {}, None, id="nothing-saved"),
        pytest.param(("gpu-users",), {"profile": "gpu-1"}, {}, BINDER, id="saved-gpu-with-binder"),
        pytest.param(("gpu-users",), {"profile": "gpu-1"}, {"gpu-1": BLOCKED}, None, id="saved-but-blocked"),
        pytest.param(("gpu-users",), {"profile": "nope"}, {"shared-2g": BLOCKED}, None, id="default-blocked"),
    ],
)
async def test_the_picker_renders_as_plain_jinja_would(roles, saved, verdicts, binder):
    # render_picker reads dict keys without Jinja's getattr-then-getitem: the page must not change.
    spawner = make_spawner(roles, saved)
    offered = with_availability(
        with_cards(CATALOG, await spawner.offered_profile_list()), {"profiles": verdicts}
    )
    offered = [*offered, {"slug": "no-card", "display_name": "Plain <dict>", "default": False}]
    ours = render_picker([PICKER_TEMPLATE_DIR], offered, saved, binder)
    plain = PLAIN_JINJA.get_template("form.html").render(
        profile_list=offered, user_options=saved, binder=binder
    )
    assert ours == plain
    assert 'data-slug="no-card"' in ours


async def test_the_template_is_compiled_once_per_process():
    paths = [PICKER_TEMPLATE_DIR]
    render_picker(paths, [], {}, {})
    template = picker_module._environment(tuple(paths)).get_template("form.html")
    render_picker(paths, [], {}, {})
    assert picker_module._environment(tuple(paths)).get_template("form.html") is template
