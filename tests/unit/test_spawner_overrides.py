"""Which traits a start resets, and that CERNSpawner applies a profile exactly as KubeSpawner would.

The same spawner object serves every start of a server and KubeSpawner applies a profile's
overrides onto it. CERNSpawner resets, before each start, the traits the previous start's profile
may have overridden (and only those), and applies the chosen profile from the one offered entry
instead of KubeSpawner's copy of the whole list.
"""

import inspect

import pytest
from kubespawner import KubeSpawner
from traitlets.config import Config

from cern_spawner import CERNSpawner
from cern_spawner.options import override_keys

pytestmark = pytest.mark.unit
# Own event loop per test: kubespawner caches API clients per running loop.
async_test = pytest.mark.asyncio(loop_scope="function")

CATALOG = """\
node_groups:
  default-worker: {zones: [a, b]}
  gpu-v100:
    gpu: {per_node: 4}
    taint: {key: nvidia.com/gpu, value: present, effect: NoSchedule}
profiles:
  - slug: shared-2g
    display_name: Shared
    kind: shared
    cpu: {guarantee: 0.2, limit: 1}
    memory: {guarantee: 1G, limit: 2G}
    node_group: default-worker
    default: true
  - slug: shared-images
    display_name: Shared, with an image choice
    kind: shared
    cpu: {guarantee: 0.5, limit: 2}
    memory: {guarantee: 2G, limit: 4G}
    node_group: default-worker
    image_choices:
      base: {display_name: Base, image: 'jupyter/base:1'}
      tf: {display_name: TensorFlow, image: 'jupyter/tf:1'}
  - slug: gpu-1
    display_name: GPU
    kind: dedicated
    cpu: 2
    memory: 4G
    gpus: 1
    node_group: gpu-v100
    start_timeout: 900
"""
SITE_TOLERATION = {"key": "site", "operator": "Exists"}
HOOK_TOLERATION = {"key": "set-by-a-hook", "operator": "Exists"}


@pytest.fixture(autouse=True)
def no_kube_config(monkeypatch):
    # Building a spawner loads a kube config; nothing here talks to an API server.
    monkeypatch.setattr("kubespawner.spawner.load_config", lambda **kwargs: None)


@pytest.fixture
def profiles(tmp_path):
    (tmp_path / "profiles.yaml").write_text(CATALOG)
    return tmp_path


def make_spawner(profiles, spawner_class=CERNSpawner, **config):
    c = Config()
    c.CERNSpawner.profiles_path = [str(profiles)]
    c.CERNSpawner.image = "site/notebook:1"
    c.CERNSpawner.tolerations = [SITE_TOLERATION]
    for name, value in config.items():
        setattr(c[spawner_class.__name__], name, value)
    spawner = spawner_class(_mock=True, config=c)
    spawner.user.groups = []
    spawner.user.admin = False

    async def get_auth_state():
        return None

    spawner.user.get_auth_state = get_auth_state
    return spawner


async def start(spawner, user_options):
    """What JupyterHub runs before start(): the apply_user_options hook, then load_user_options."""
    spawner.user_options = user_options
    await spawner._check_user_options(spawner, user_options)
    await spawner.load_user_options()


@pytest.mark.parametrize(
    ("entry", "keys"),
    [
        ({"slug": "a"}, set()),
        ({"slug": "a", "kubespawner_override": {"cpu_limit": 1, "image": "x"}}, {"cpu_limit", "image"}),
        (
            {
                "kubespawner_override": {"mem_limit": "1G"},
                "profile_options": {
                    "image": {
                        "choices": {
                            "a": {"kubespawner_override": {"image": "a"}},
                            "b": {"kubespawner_override": {"image": "b", "cmd": ["b"]}},
                        }
                    }
                },
            },
            {"mem_limit", "image", "cmd"},
        ),
        (
            {"profile_options": {"x": {"unlisted_choice": {"kubespawner_override": {"image": "{value}"}}}}},
            {"image"},
        ),
        ({"kubespawner_override": None, "profile_options": {"x": {"choices": None}}}, set()),
    ],
    ids=["none", "profile", "profile-and-choices", "unlisted-choice", "empty-parts"],
)
def test_override_keys(entry, keys):
    assert override_keys(entry) == keys


@async_test
@pytest.mark.parametrize(
    ("first", "then", "trait", "configured"),
    [
        ({"profile": "gpu-1"}, {"profile": "shared-2g"}, "tolerations", [SITE_TOLERATION]),
        ({"profile": "gpu-1"}, {"profile": "shared-2g"}, "extra_resource_limits", {}),
        ({"profile": "gpu-1"}, {"profile": "shared-2g"}, "start_timeout", 60),
        ({"profile": "shared-images", "image": "tf"}, {"profile": "shared-2g"}, "image", "site/notebook:1"),
        ({"profile": "shared-images", "image": "tf"}, {}, "cpu_limit", None),
    ],
    ids=["gpu-toleration", "gpu-limits", "gpu-start-timeout", "chosen-image", "to-the-default-profile"],
)
async def test_a_trait_the_previous_profile_overrode_is_restored(profiles, first, then, trait, configured):
    spawner = make_spawner(profiles, start_timeout=60)
    await start(spawner, first)
    assert getattr(spawner, trait) != configured
    spawner.user_options = then
    await spawner._check_user_options(spawner, then)  # before KubeSpawner applies the next profile
    assert getattr(spawner, trait) == configured


@async_test
@pytest.mark.parametrize(
    ("first", "then"),
    [
        ({"profile": "shared-2g"}, {"profile": "shared-2g"}),
        ({"profile": "shared-images", "image": "tf"}, {"profile": "shared-2g"}),
        ({}, {}),
    ],
    ids=["shared-again", "image-choice-then-shared", "default-twice"],
)
async def test_traits_the_previous_profile_did_not_touch_are_not_reset(profiles, first, then):
    # gpu-1 may override tolerations, but no shared profile does: a value set between starts (by a
    # hook, say) is left as it is; what the previous profile did override goes back.
    spawner = make_spawner(profiles)
    await start(spawner, first)
    spawner.tolerations = [HOOK_TOLERATION]
    spawner.cpu_limit = 64.0
    spawner.user_options = then
    await spawner._check_user_options(spawner, then)
    assert spawner.tolerations == [HOOK_TOLERATION]
    assert spawner.cpu_limit is None  # configured: unset


@async_test
@pytest.mark.parametrize(
    "sequence",
    [
        [{"profile": "shared-2g"}],
        [{}],
        [{"profile": "gpu-1"}],
        [{"profile": "shared-images"}],
        [{"profile": "shared-images", "image": "tf"}],
        [{"profile": "gpu-1"}, {"profile": "shared-images", "image": "tf"}, {}],
    ],
    ids=["shared", "default", "gpu", "image-default", "image-chosen", "gpu-image-default"],
)
async def test_the_profile_is_applied_as_kubespawners_load_user_options_would(profiles, sequence):
    ours = make_spawner(profiles)
    theirs = make_spawner(profiles)
    for user_options in sequence:
        await start(ours, user_options)
        theirs.user_options = user_options
        await theirs._check_user_options(theirs, user_options)
        await KubeSpawner.load_user_options(theirs)  # the whole offered list, KubeSpawner's way
        manifests = [
            s.api.api_client.sanitize_for_serialization(await s.get_pod_manifest()) for s in (ours, theirs)
        ]
        assert manifests[0] == manifests[1]
        assert ours.start_timeout == theirs.start_timeout


@async_test
async def test_a_profile_list_configured_by_hand_is_applied_by_kubespawner(profiles):
    # Our shortcut applies only to the catalog's offered list; any other list is KubeSpawner's.
    listed = [{"display_name": "Mine", "slug": "mine", "kubespawner_override": {"cpu_limit": 3.0}}]
    spawner = make_spawner(profiles, profile_list=listed)
    spawner.user_options = {"profile": "mine"}
    await spawner.load_user_options()
    assert spawner.cpu_limit == 3.0


def test_kubespawners_load_user_options_is_the_sequence_we_shortcut():
    """CERNSpawner.load_user_options runs these steps on the one chosen entry; if KubeSpawner's
    method changes, ours must follow (docs/architecture.md, "KubeSpawner internals we use")."""
    source = inspect.getsource(KubeSpawner.load_user_options)
    steps = [
        "profile_list = self._get_initialized_profile_list(profile_list)",
        "self._validate_user_options(profile_list)",
        "self._load_profile(selected_profile, profile_list)",
    ]
    assert [source.find(step) >= 0 for step in steps] == [True] * len(steps)
    assert sorted(steps, key=source.find) == steps
    assert list(inspect.signature(KubeSpawner._validate_user_options).parameters) == ["self", "profile_list"]
    assert list(inspect.signature(KubeSpawner._load_profile).parameters) == ["self", "slug", "profile_list"]
