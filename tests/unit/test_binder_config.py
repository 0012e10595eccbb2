"""BinderConfig: defaults, and refusals that name the trait and the bad value."""

from __future__ import annotations

import pytest
from traitlets import TraitError
from traitlets.config import Config

from cern_spawner.binder.config import RESTRICTED_CONTEXT, BinderConfig

pytestmark = pytest.mark.unit


def test_defaults():
    config = BinderConfig()
    assert not config.enabled
    assert config.registry == ""
    assert config.image_prefix == "binder-"
    assert config.allowed_hosts == ["github.com", "gitlab.cern.ch"]
    assert config.insecure_origins == []
    assert (config.github_host, config.gitlab_host) == ("github.com", "gitlab.cern.ch")
    assert config.resolve_timeout == 30
    assert config.builder_image.startswith("quay.io/jupyterhub/repo2docker:")
    assert ":latest" not in config.builder_image
    command = config.builder_command
    assert command[0] == "repo2docker"
    for flag in ("--no-run", "--push"):
        assert flag in command
    assert command[command.index("--ref") + 1] == "{commit}"
    assert command[command.index("--image-name") + 1] == "{image}"
    assert command[-1] == "{repo_url}"
    # Safe by default: no host engine, builds apart from the notebooks, restricted pods.
    assert config.engine_socket == ""
    assert config.build_namespace == "binder-builds"
    assert config.build_security_context == RESTRICTED_CONTEXT
    assert config.build_timeout == 3600
    assert config.per_user_build_limit == 1
    assert config.max_concurrent_builds == 4
    assert config.log_tail_lines == 30
    assert set(config.build_resources) == {"requests", "limits"}


def test_no_socket_means_restricted_context():
    config = BinderConfig(config=Config({"BinderConfig": {"engine_socket": ""}}))
    assert config.build_security_context == RESTRICTED_CONTEXT


FENCED = {
    "build_namespace": "binder-builds",
    "build_node_selector": {"pool": "builds"},
    "build_tolerations": [{"key": "builds", "operator": "Exists", "effect": "NoSchedule"}],
}


@pytest.mark.parametrize(
    ("traits", "spawner", "words"),
    [
        ({**FENCED, "build_namespace": ""}, {}, "notebooks' namespace (\"the spawner's namespace\")"),
        ({**FENCED, "build_namespace": "jupyter-users"}, {"namespace": "jupyter-users"}, "('jupyter-users')"),
        ({**FENCED, "build_node_selector": {}}, {}, "dedicated, tainted nodes"),
        ({**FENCED, "build_tolerations": []}, {}, "dedicated, tainted nodes"),
        ({"build_namespace": ""}, {}, "notebooks' namespace"),
    ],
    ids=["spawners-namespace", "same-as-notebooks", "no-node-selector", "no-toleration", "nothing-fenced"],
)
def test_engine_socket_refused_unless_builds_are_fenced(traits, spawner, words):
    c = Config({"BinderConfig": {**traits, "engine_socket": "/var/run/docker.sock"}})
    for name, value in spawner.items():
        setattr(c.KubeSpawner, name, value)
    with pytest.raises(TraitError) as info:
        BinderConfig(config=c)
    message = str(info.value)
    assert "BinderConfig.engine_socket '/var/run/docker.sock'" in message and words in message
    assert "rootless" in message


def test_engine_socket_accepted_on_fenced_builds():
    config = BinderConfig(
        config=Config({"BinderConfig": {**FENCED, "engine_socket": "/var/run/docker.sock"}})
    )
    assert config.build_security_context == {"runAsUser": 0, "runAsNonRoot": False}


def test_from_hub_config_and_enabled():
    c = Config()
    c.BinderConfig.registry = "registry.cern.ch/"
    c.BinderConfig.http_registries = ["127.0.0.1:5000"]
    config = BinderConfig(config=c)
    assert config.enabled
    assert config.registry == "registry.cern.ch"  # trailing '/' dropped


@pytest.mark.parametrize(
    ("trait", "value"),
    [
        ("registry", "https://registry.cern.ch"),
        ("registry", "registry.cern.ch/path"),
        ("image_prefix", "Binder-"),
        ("image_prefix", "binder:"),
        ("allowed_hosts", ["https://github.com"]),
        ("allowed_hosts", ["GitHub.com"]),
        ("allowed_hosts", ["*"]),
        ("insecure_origins", ["http://127.0.0.1"]),
        ("insecure_origins", ["https://127.0.0.1:8000"]),
        ("insecure_origins", ["http://127.0.0.1:8000/path"]),
        ("insecure_origins", ["http://u:p@127.0.0.1:8000"]),
        ("builder_command", ["repo2docker", "{repo_url}"]),
        ("builder_command", []),
        ("build_timeout", 0.0),
        ("resolve_timeout", -1.0),
        ("per_user_build_limit", 0),
        ("max_concurrent_builds", 0),
        ("log_tail_lines", 0),
        ("allowed_hosts", ["git.example.org:0"]),
        ("allowed_hosts", ["git.example.org:70000"]),
        ("allowed_hosts", ["git.example.org:"]),
    ],
    ids=[
        "registry-scheme",
        "registry-path",
        "prefix-upper",
        "prefix-colon",
        "host-url",
        "host-upper",
        "host-star",
        "origin-no-port",
        "origin-https",
        "origin-path",
        "origin-credentials",
        "command-no-image",
        "command-empty",
        "build-timeout-zero",
        "resolve-timeout-negative",
        "limit-zero",
        "global-limit-zero",
        "tail-zero",
        "host-port-zero",
        "host-port-too-big",
        "host-port-empty",
    ],
)
def test_refused(trait, value):
    with pytest.raises(TraitError) as info:
        BinderConfig(**{trait: value})
    message = str(info.value)
    assert f"BinderConfig.{trait}" in message
    shown = value[0] if isinstance(value, list) and value else value
    assert repr(shown) in message


@pytest.mark.parametrize(
    ("trait", "value"),
    [
        ("registry", "127.0.0.1:5000"),
        ("image_prefix", "binder/"),
        ("allowed_hosts", ["*.cern.ch", "github.com"]),
        ("allowed_hosts", ["git.example.org:8443", "*.cern.ch:8443"]),
        ("insecure_origins", ["http://127.0.0.1:8000"]),
        ("builder_command", ["python", "-c", "print({'a': 1})", "{image}"]),
    ],
    ids=["registry-port", "prefix-slash", "hosts-wildcard", "hosts-with-ports", "origin", "command-braces"],
)
def test_accepted(trait, value):
    assert getattr(BinderConfig(**{trait: value}), trait) == value
