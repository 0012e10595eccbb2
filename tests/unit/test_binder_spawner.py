"""CERNSpawner's side of repository launches, without a cluster: the options a form or query gives,
refusals the user can read (with what was typed kept), and the image and timeout of a launch never
leaking into the next spawn."""

import asyncio
from pathlib import Path

import pytest
from jupyterhub.utils import url_path_join
from traitlets.config import Config

from cern_spawner import CERNSpawner
from cern_spawner.binder.launch import Launch
from cern_spawner.binder.spawning import LaunchNotConfirmed, SpawnRefused

pytestmark = [pytest.mark.unit, pytest.mark.asyncio(loop_scope="function")]

PROFILES_DIR = Path(__file__).resolve().parents[2] / "profiles"
REPO = "https://gitlab.cern.ch/physics/analysis"
BUILD_TIMEOUT = 1800


@pytest.fixture(autouse=True)
def no_kube_config(monkeypatch):
    monkeypatch.setattr("kubespawner.spawner.load_config", lambda **kwargs: None)


def make_spawner(registry: str = "registry.cern.ch") -> CERNSpawner:
    c = Config()
    c.CERNSpawner.profiles_path = [str(PROFILES_DIR)]
    c.CERNSpawner.start_timeout = 300
    c.BinderConfig.registry = registry
    c.BinderConfig.allowed_hosts = ["gitlab.cern.ch"]
    c.BinderConfig.build_timeout = BUILD_TIMEOUT
    spawner = CERNSpawner(_mock=True, config=c)
    spawner.user.groups = []
    spawner.user.admin = False
    return spawner


def form(**fields: str) -> dict[str, list[str]]:
    return {key: [value] for key, value in fields.items()}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (form(profile="shared-1g"), {"profile": "shared-1g"}),
        (form(profile="shared-1g", binder_repo="", binder_ref=""), {"profile": "shared-1g"}),
        (
            form(profile="shared-1g", binder_repo=f" {REPO} ", binder_ref=""),
            {"profile": "shared-1g", "binder_repo": REPO, "binder_ref": "HEAD"},
        ),
        (
            form(profile="shared-1g", binder_repo=REPO, binder_ref="v1.2"),
            {"profile": "shared-1g", "binder_repo": REPO, "binder_ref": "v1.2"},
        ),
    ],
    ids=["no-section", "empty-section", "repository-default-ref", "repository-and-tag"],
)
async def test_options_from_the_form(fields, expected):
    assert make_spawner().options_from_form(fields) == expected


@pytest.mark.parametrize(
    ("registry", "fields", "status", "named"),
    [
        ("registry.cern.ch", form(binder_repo="https://evil.example/r.git"), 403, "evil.example"),
        ("registry.cern.ch", form(binder_repo="file:///etc"), 400, "file"),
        ("registry.cern.ch", form(binder_repo=REPO, binder_ref="-upload-pack=sh"), 400, "-upload-pack"),
        ("", form(binder_repo=REPO), 400, "not enabled"),
    ],
    ids=["host-not-allowed", "local-path", "option-as-ref", "binder-off"],
)
async def test_a_refused_repository_is_said_on_the_form_with_what_was_typed(registry, fields, status, named):
    spawner = make_spawner(registry)
    fields = {"profile": ["shared-1g"], **fields}
    with pytest.raises(SpawnRefused) as raised:
        spawner.options_from_form(fields)
    assert raised.value.status_code == status
    # JupyterHub draws the form again with `jupyterhub_message` (not "HTTP 403: Forbidden (…)").
    assert named in raised.value.jupyterhub_message
    assert str(raised.value) == raised.value.jupyterhub_message
    page = await spawner._render_options_form_dynamically(spawner)
    if registry:
        assert '<details class="cern-binder" id="cern-binder" open>' in page
        assert f'value="{fields["binder_repo"][0]}"' in page
    # Only once: the next visit shows the saved options again.
    page = await spawner._render_options_form_dynamically(spawner)
    assert fields["binder_repo"][0] not in page


async def test_a_launch_sets_image_and_timeout_for_that_spawn_only():
    spawner = make_spawner()
    pristine_image = spawner.image
    await spawner._check_user_options(
        spawner, {"profile": "shared-1g", "binder_repo": REPO, "binder_ref": "main"}
    )
    assert spawner.start_timeout >= 300 + BUILD_TIMEOUT
    # What prepare_image would have found; load_user_options applies the profile, then the image.
    built = f"registry.cern.ch/binder-analysis-abc123:{'a' * 40}"
    spawner.spawn_state.binder_launch = Launch(REPO, "main", "a" * 40, built, built=True)
    spawner.user_options = {"profile": "shared-1g", "binder_repo": REPO, "binder_ref": "main"}
    await spawner.load_user_options()
    assert spawner.image == built

    await spawner._check_user_options(spawner, {"profile": "shared-1g"})
    spawner.user_options = {"profile": "shared-1g"}
    await spawner.load_user_options()
    assert spawner.image == pristine_image
    assert spawner.start_timeout == 300


async def test_each_start_begins_with_a_fresh_spawn_state():
    spawner = make_spawner()
    await spawner._check_user_options(
        spawner, {"profile": "shared-1g", "binder_repo": REPO, "binder_ref": "main"}
    )
    launch = spawner.spawn_state
    assert launch.binder_request == (REPO, "main") and launch.plan.slug == "shared-1g"
    # What that start went through: a build's messages and result, its start() begun.
    launch.binder_messages.append("Building the image")
    launch.binder_launch = Launch(REPO, "main", "a" * 40, "registry.cern.ch/x:1", built=True)
    launch.started = True

    await spawner._check_user_options(spawner, {"profile": "shared-1g"})  # the next start
    state = spawner.spawn_state
    assert state is not launch
    assert (state.binder_request, state.binder_launch, state.binder_messages, state.started) == (
        None,
        None,
        [],
        False,
    )
    assert state.plan.slug == "shared-1g"


@pytest.mark.parametrize(
    "reported_meanwhile",
    [["Building the image (build pod binder-build-0)…", "Image built and pushed."], []],
    ids=["the-build-ends-while-the-client-holds-a-message", "nothing-more"],
)
async def test_the_progress_stream_gives_every_message_of_a_launch(reported_meanwhile):
    spawner = make_spawner()
    messages = spawner.spawn_state.binder_messages
    messages.append(f"Resolved main of {REPO} to aaaaaaaaaaaa")
    preparing = asyncio.get_running_loop().create_future()
    given = []
    async for event in spawner.binder_progress(preparing):
        given.append(event["message"])
        if len(given) == 1:  # a slow client: the build reports more, and ends, before it asks again
            messages.extend(reported_meanwhile)
            preparing.set_result(None)
    assert given == [f"Resolved main of {REPO} to aaaaaaaaaaaa", *reported_meanwhile]


async def test_a_progress_stream_opened_before_the_start_still_shows_the_build():
    spawner = make_spawner()
    spawner._spawn_pending = True
    shown = []

    async def follow():
        async for event in spawner.progress():
            shown.append(event["message"])

    following = asyncio.ensure_future(follow())
    await asyncio.sleep(0.05)  # the page's stream is open; JupyterHub's hooks still run
    state = spawner.spawn_state
    state.started = True  # start() begins: the build is under way in the same step
    state.binder_messages.append(f"Resolved main of {REPO} to aaaaaaaaaaaa")
    state.binder_preparing = asyncio.get_running_loop().create_future()
    state.binder_preparing.set_result(None)
    await asyncio.wait_for(following, timeout=5)  # no catalog plan here: the stream ends
    assert shown == [f"Resolved main of {REPO} to aaaaaaaaaaaa"]


@pytest.mark.parametrize(
    "user_options",
    [
        {"profile": "shared-1g", "binder_repo": REPO, "binder_ref": "main", "image": "evil.example/x:1"},
        {"profile": "shared-1g", "image": "evil.example/x:1"},
        {"binder_repo": REPO, "image": "evil.example/x:1"},
    ],
    ids=["with-repository", "alone", "without-profile"],
)
async def test_an_image_in_the_options_is_refused(user_options):
    spawner = make_spawner()
    with pytest.raises(SpawnRefused) as raised:
        await spawner._check_user_options(spawner, user_options)
    assert raised.value.status_code == 400
    assert "image" in raised.value.jupyterhub_message.lower()
    assert spawner.spawn_state.binder_request is None


async def test_the_mixin_keeps_kubespawners_form_parsing():
    spawner = make_spawner()
    fields = {"profile": ["shared-1g"], "profile-option-shared-1g--image": ["x"], "binder_repo": [""]}
    assert spawner.options_from_form(fields) == {"profile": "shared-1g", "image": "x"}


@pytest.mark.parametrize(
    ("roles", "status"),
    [((), 403), (("gpu-users",), None)],
    ids=["without-the-role", "with-the-role"],
)
async def test_a_repository_on_a_gpu_profile_keeps_its_role_check(roles, status):
    spawner = make_spawner()
    spawner.user.groups = [type("Group", (), {"name": role})() for role in roles]
    options = {"profile": "gpu-1", "binder_repo": REPO, "binder_ref": "main"}
    if status is None:
        await spawner._check_user_options(spawner, options)
        assert spawner.spawn_state.binder_request == (REPO, "main")
        return
    with pytest.raises(SpawnRefused) as raised:
        await spawner._check_user_options(spawner, options)
    assert raised.value.status_code == status
    assert "gpu-users" in raised.value.jupyterhub_message


@pytest.mark.parametrize(
    ("query", "linked"),
    [
        (
            {"profile": ["shared-1g"], "binder_repo": [REPO], "binder_ref": ["main"]},
            '/git/https%3A%2F%2Fgitlab.cern.ch%2Fphysics%2Fanalysis/main?profile=shared-1g"',
        ),
        ({"binder_repo": [REPO], "binder_ref": ["feature/x"]}, '/feature%2Fx"'),
        ({"binder_repo": [REPO], "binder_tokens": ["on"]}, '/HEAD"'),
        ({"binder_repo": ["https://evil.example/<b>x</b>"]}, None),
        ({"binder_ref": ["main"]}, None),
    ],
    ids=[
        "with-profile",
        "ref-with-slash",
        "tokens-asked-in-the-query",
        "refused-host-not-echoed",
        "ref-only",
    ],
)
async def test_a_spawn_query_never_launches_a_repository(query, linked):
    """GET /hub/spawn/<user>?opt-binder_repo=…: any page can make a browser send it."""
    spawner = make_spawner()
    with pytest.raises(LaunchNotConfirmed) as raised:
        spawner.options_from_query(query)
    refusal = raised.value
    assert refusal.status_code == 403
    assert isinstance(refusal, SpawnRefused)
    # JupyterHub's spawn page shows the HTML message (the plain one must be None for that).
    assert refusal.jupyterhub_message is None
    assert "must be confirmed" in refusal.jupyterhub_html_message
    if linked:
        confirmation = url_path_join(spawner.hub.base_url, "binder/v2/git/")
        assert f'<a href="{confirmation}' in refusal.jupyterhub_html_message
        assert linked in refusal.jupyterhub_html_message
    else:
        assert "<a " not in refusal.jupyterhub_html_message
        assert "evil" not in refusal.jupyterhub_html_message


async def test_a_plain_spawn_query_still_works():
    assert make_spawner().options_from_query({"profile": ["shared-1g"]}) == {"profile": "shared-1g"}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            form(profile="shared-1g", binder_repo=REPO, binder_tokens="on"),
            {"profile": "shared-1g", "binder_repo": REPO, "binder_ref": "HEAD", "binder_tokens": True},
        ),
        (
            form(profile="shared-1g", binder_repo=REPO),
            {"profile": "shared-1g", "binder_repo": REPO, "binder_ref": "HEAD"},
        ),
    ],
    ids=["ticked", "not-ticked"],
)
async def test_the_tokens_checkbox_of_a_form_post(fields, expected):
    spawner = make_spawner()
    options = spawner.options_from_form(fields)
    assert options == expected
    await spawner._check_user_options(spawner, options)  # accepted by every server-side check


@pytest.mark.parametrize(
    ("slug", "expected"),
    [
        ("", ("shared-2g", "Shared, 2 GB memory, 1 CPU core")),
        ("shared-4g", ("shared-4g", "Shared, 4 GB memory, 2 CPU cores")),
    ],
    ids=["the-catalogs-default", "named"],
)
async def test_the_confirmation_page_names_the_profile(slug, expected):
    assert await make_spawner().describe_launch_profile(slug) == expected


async def test_the_confirmation_page_refuses_a_profile_the_user_may_not_start():
    with pytest.raises(SpawnRefused) as raised:
        await make_spawner().describe_launch_profile("gpu-1")
    assert raised.value.status_code == 403
    assert "gpu-users" in raised.value.jupyterhub_message
