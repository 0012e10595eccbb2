"""configure_hub and c.GPUScaling: what ends up in the hub's config, as data (no hub, no loop)."""

from __future__ import annotations

import logging

import pytest
from traitlets.config import Config

from cern_spawner import configure_hub
from cern_spawner.binder.handlers import binder_handlers
from cern_spawner.culling.handlers import handlers as culling_handlers
from cern_spawner.scaling import startup
from cern_spawner.scaling.config import GPUScaling
from cern_spawner.web import HUB_TEMPLATE_DIR
from cern_spawner.web.admin import admin_handlers
from cern_spawner.web.handlers import handlers

pytestmark = pytest.mark.unit

CERN_ROUTES = [pattern for pattern, *_ in handlers + admin_handlers + culling_handlers]
BINDER_ROUTES = [pattern for pattern, *_ in binder_handlers()]


def routes(c: Config) -> list[str]:
    return [pattern for pattern, *_ in c.JupyterHub.extra_handlers]


@pytest.mark.parametrize(
    "before, kwargs, expected",
    [
        (
            {},
            {},
            {
                "spawner_class": "cern",
                "authenticator_class": "cern",
                "template_paths": [HUB_TEMPLATE_DIR],
                "routes": CERN_ROUTES,
            },
        ),
        ({}, {"authenticator": False}, {"authenticator_class": None}),
        (
            {"BinderConfig": {"registry": "registry.example.org"}},
            {},
            {"routes": CERN_ROUTES + BINDER_ROUTES},
        ),
        ({"BinderConfig": {"registry": "registry.example.org"}}, {"binder": False}, {"routes": CERN_ROUTES}),
        ({}, {"binder": True}, {"routes": CERN_ROUTES + BINDER_ROUTES}),
        (
            {"JupyterHub": {"template_paths": ["/site/templates"], "extra_handlers": [("/mine", object)]}},
            {},
            {"template_paths": ["/site/templates", HUB_TEMPLATE_DIR], "routes": ["/mine", *CERN_ROUTES]},
        ),
        ({}, {"profiles": "/srv/profiles"}, {"profiles_path": ["/srv/profiles"]}),
        ({}, {"profiles": ["/a", "/b.yaml"]}, {"profiles_path": ["/a", "/b.yaml"]}),
        ({"CERNSpawner": {"profiles_path": ["/kept"]}}, {}, {"profiles_path": ["/kept"]}),
    ],
    ids=[
        "defaults",
        "own-authenticator",
        "binder-on-with-registry",
        "binder-forced-off",
        "binder-forced-on",
        "keeps-hub-templates-and-handlers",
        "profiles-one-path",
        "profiles-several",
        "profiles-as-configured",
    ],
)
def test_configure_hub_sets(before, kwargs, expected):
    c = Config(before)
    configure_hub(c, **kwargs)
    hub = c.JupyterHub
    if "spawner_class" in expected:
        assert hub.spawner_class == expected["spawner_class"]
    if "authenticator_class" in expected:
        assert hub.get("authenticator_class") == expected["authenticator_class"]
    if "template_paths" in expected:
        assert hub.template_paths == expected["template_paths"]
    if "routes" in expected:
        assert routes(c) == expected["routes"]
    if "profiles_path" in expected:
        assert c.CERNSpawner.profiles_path == expected["profiles_path"]


def test_configure_hub_twice_adds_nothing_twice():
    c = Config()
    configure_hub(c, binder=True)
    configure_hub(c, binder=True)
    assert routes(c) == CERN_ROUTES + BINDER_ROUTES
    assert c.JupyterHub.template_paths == [HUB_TEMPLATE_DIR]


def test_configure_hub_extends_lazy_appends():
    c = Config()
    c.JupyterHub.template_paths.append("/site/templates")  # a lazy value, merged with the default later
    configure_hub(c)
    assert c.JupyterHub.template_paths.get_value([]) == ["/site/templates", HUB_TEMPLATE_DIR]


def test_without_an_event_loop_growth_is_not_started():
    # As in `jupyterhub upgrade-db` or a config test: nothing is scheduled, nothing is built.
    assert startup.start_with_hub(Config({"GPUScaling": {"openstack_cloud": "c"}})) is False


@pytest.mark.parametrize(
    "config, expected, warned",
    [
        ({}, {"openstack_cloud": "", "interval": 2.0, "grace_period": 600.0}, []),
        (
            {"GPUScaling": {"openstack_cloud": "cloud", "interval": 1.0, "grace_period": 5.0}},
            {"openstack_cloud": "cloud", "interval": 1.0, "grace_period": 5.0},
            [],
        ),
        (
            {
                "CERNSpawner": {
                    "openstack_cloud": "old",
                    "openstack_clouds_yaml": "/c.yaml",
                    "scaling_interval": 1.0,
                    "scaling_grace_period": 5.0,
                }
            },
            {
                "openstack_cloud": "old",
                "openstack_clouds_yaml": "/c.yaml",
                "interval": 1.0,
                "grace_period": 5.0,
            },
            ["openstack_cloud", "openstack_clouds_yaml", "scaling_interval", "scaling_grace_period"],
        ),
        (
            {"CERNSpawner": {"scaling_interval": 3.0}, "GPUScaling": {"interval": 1.0}},
            {"interval": 1.0},
            ["scaling_interval"],
        ),
        ({"CERNSpawner": {"scaling_interval": 1.0}, "GPUScaling": {"interval": 1.0}}, {"interval": 1.0}, []),
    ],
    ids=["defaults", "new-names", "old-names-still-work", "new-name-wins", "same-under-both-names"],
)
def test_gpu_scaling_reads_deprecated_spawner_names(config, expected, warned, caplog):
    with caplog.at_level(logging.WARNING):
        settings = GPUScaling(config=Config(config))
    for name, value in expected.items():
        assert getattr(settings, name) == value
    messages = [r.getMessage() for r in caplog.records]
    assert [m.split()[0] for m in messages] == [f"CERNSpawner.{old}" for old in warned]
    assert all("deprecated" in m and "GPUScaling." in m for m in messages)


@pytest.mark.parametrize(
    "config, name, expected",
    [
        ({}, "profiles_path", ["/etc/cern-spawner/profiles"]),
        ({"CERNSpawner": {"profiles_path": ["/p"]}}, "profiles_path", ["/p"]),
        ({"KubeSpawner": {"namespace": "k"}}, "namespace", "k"),
        ({"KubeSpawner": {"namespace": "k"}, "CERNSpawner": {"namespace": "c"}}, "namespace", "c"),
        ({"Spawner": {"namespace": "s"}, "KubeSpawner": {"namespace": "k"}}, "namespace", "k"),
        ({}, "profiles_reload_interval", 1.0),
    ],
    ids=["default", "cern-section", "kube-section", "cern-wins", "kube-over-spawner", "float-default"],
)
def test_hub_start_reads_the_spawners_settings_as_traitlets_does(config, name, expected):
    assert startup.spawner_setting(Config(config), name) == expected


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"KubeSpawner": {"namespace": "k"}, "CERNSpawner": {"profiles_reload_interval": 5.0}},
        {"Spawner": {"namespace": "s"}, "CERNSpawner": {"namespace": "c", "profiles_path": ["/p"]}},
    ],
    ids=["defaults", "kube-section", "cern-over-spawner"],
)
async def test_hub_start_reads_what_a_real_spawner_reads(config, monkeypatch):
    """The controller started with the hub is the one spawners use only if both see the same
    namespace and catalog: compare with a CERNSpawner built on the same config. (With growth off
    building one reads no catalog: '/p' does not exist.)"""
    from cern_spawner.spawner import CERNSpawner

    monkeypatch.setattr("kubespawner.spawner.load_config", lambda **kwargs: None)  # no cluster here
    c = Config(config)
    spawner = CERNSpawner(config=c, _mock=True)
    assert (startup.spawner_setting(c, "namespace") or startup.default_namespace()) == spawner.namespace
    assert startup.spawner_setting(c, "profiles_path") == spawner.profiles_path
    assert startup.spawner_setting(c, "profiles_reload_interval") == spawner.profiles_reload_interval


@pytest.mark.parametrize(
    "bad", [0, -1, 2.5, True, "10000"], ids=["zero", "negative", "float", "bool", "text"]
)
def test_a_bad_young_gc_threshold_is_refused_at_once(bad):
    # Refused while the config is read, not once the hub serves (where it would only be logged).
    with pytest.raises(ValueError, match=r"configure_hub\(young_gc_threshold=.*\): a number of allocations"):
        configure_hub(Config(), young_gc_threshold=bad)
