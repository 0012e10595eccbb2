"""Exchanged tokens reach the notebook pod as a read-only Secret volume, never as environment."""

import logging
from types import SimpleNamespace

import pytest

from cern_spawner.auth import token_secret
from tests.unit.test_spawner_pod import (  # noqa: F401 (no_kube_config: an autouse fixture)
    make_spawner,
    no_kube_config,
    notebook,
    restricted_violations,
    spawn,
)

pytestmark = [pytest.mark.unit, pytest.mark.asyncio(loop_scope="function")]

AUTH_STATE = {
    "access_token": "HUB-ACCESS",
    "refresh_token": "HUB-REFRESH",
    "exchanged_tokens": {"eos-service": {"access_token": "EOS-TOKEN", "expires_at": 1e10}},
}


@pytest.fixture
def written(monkeypatch):
    """The Secrets the spawner would write, instead of the API server."""
    secrets = []

    async def write(api_client, username, namespace, auth_state):
        tokens = token_secret.tokens_from_auth_state(auth_state)
        if not tokens:
            return None
        secrets.append(token_secret.token_secret_manifest(username, namespace, tokens))
        return secrets[-1]["metadata"]["name"]

    monkeypatch.setattr(token_secret, "write_user_tokens", write)
    return secrets


async def test_exchanged_tokens_are_mounted_read_only_and_kept_out_of_env(written):
    spawner = make_spawner(auth_state=AUTH_STATE)
    pod = await spawn(spawner, {"profile": "shared-2g"})
    (secret,) = written
    name = secret["metadata"]["name"]
    assert name == token_secret.token_secret_name(spawner.user.name)
    assert set(secret["data"]) == {"eos-service.token"}
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == token_secret.VOLUME)
    assert volume["secret"] == {"secretName": name, "defaultMode": 0o440}
    mount = next(m for m in notebook(pod)["volumeMounts"] if m["name"] == token_secret.VOLUME)
    assert mount == {"name": token_secret.VOLUME, "mountPath": "/run/secrets/cern-tokens", "readOnly": True}
    env = str(notebook(pod).get("env"))
    assert "EOS-TOKEN" not in env and "HUB-REFRESH" not in env and "HUB-ACCESS" not in env
    assert restricted_violations(pod) == []


async def test_no_exchanged_tokens_no_volume(written):
    pod = await spawn(make_spawner(auth_state={"access_token": "x"}), {"profile": "shared-2g"})
    assert written == []
    assert token_secret.VOLUME not in {v["name"] for v in pod["spec"].get("volumes") or []}


async def test_a_profile_overriding_volumes_keeps_the_token_mount(written):
    spawner = make_spawner(
        auth_state=AUTH_STATE,
        volumes=[{"name": "scratch", "emptyDir": {}}],
        volume_mounts=[{"name": "scratch", "mountPath": "/scratch"}],
    )
    pod = await spawn(spawner, {"profile": "shared-2g"})
    names = {v["name"] for v in pod["spec"]["volumes"]}
    assert {"scratch", token_secret.VOLUME} <= names


async def test_refresh_updates_only_active_servers_and_survives_a_failure(caplog):
    calls = []

    async def update(auth_state):
        calls.append(auth_state)

    async def broken(auth_state):
        raise RuntimeError("API server down")

    user = SimpleNamespace(
        name="bob",
        spawners={
            "": SimpleNamespace(name="", active=True, update_token_secret=update),
            "stopped": SimpleNamespace(name="stopped", active=False, update_token_secret=update),
            "broken": SimpleNamespace(name="broken", active=True, update_token_secret=broken),
            "other": SimpleNamespace(name="other", active=True),  # not a CERNSpawner
        },
    )
    await token_secret.update_running_servers(user, AUTH_STATE, logging.getLogger("test"))
    assert calls == [AUTH_STATE]
    assert "API server down" in caplog.text


REPO = "https://gitlab.cern.ch/physics/analysis"


def binder_spawner(token_launches=()):
    spawner = make_spawner(auth_state=AUTH_STATE)
    spawner.binder_config.registry = "registry.cern.ch"
    spawner.binder_config.allowed_hosts = ["gitlab.cern.ch"]
    spawner.binder_config.token_launches = list(token_launches)
    return spawner


def token_volumes(pod) -> list:
    """Every reference to the tokens: the volume, its mount, and the Secret by name anywhere."""
    found = [v for v in pod["spec"].get("volumes") or [] if v["name"] == token_secret.VOLUME]
    found += [m for m in notebook(pod).get("volumeMounts") or [] if m["name"] == token_secret.VOLUME]
    if token_secret.PREFIX in str(pod):
        found.append("the Secret's name")
    return found


@pytest.mark.parametrize(
    ("options", "token_launches", "mounted"),
    [
        ({"profile": "shared-2g", "binder_repo": REPO, "binder_ref": "main"}, (), False),
        (
            {"profile": "shared-2g", "binder_repo": REPO, "binder_ref": "main", "binder_tokens": True},
            (),
            True,
        ),
        (
            {"profile": "shared-2g", "binder_repo": REPO, "binder_ref": "main"},
            ("gitlab.cern.ch/physics/*",),
            True,
        ),
        (
            {"profile": "shared-2g", "binder_repo": REPO, "binder_ref": "main"},
            ("gitlab.cern.ch/other/*",),
            False,
        ),
        ({"profile": "shared-2g"}, (), True),
    ],
    ids=[
        "repository-not-ticked",
        "repository-ticked",
        "allowlisted",
        "other-group-allowlisted",
        "plain-spawn",
    ],
)
async def test_a_repository_launch_gets_the_tokens_only_when_asked_or_allowlisted(
    written, options, token_launches, mounted
):
    spawner = binder_spawner(token_launches)
    pod = await spawn(spawner, options)
    if mounted:
        assert token_volumes(pod), pod["spec"].get("volumes")
        assert len(written) == 1
    else:
        assert token_volumes(pod) == []
        assert written == []  # not even written for this server
        assert "EOS-TOKEN" not in str(pod)


async def test_a_refresh_leaves_a_server_without_tokens_without_them(written, monkeypatch):
    spawner = binder_spawner()
    monkeypatch.setattr(type(spawner), "ready", property(lambda self: True))  # a running server
    spawner.user_options = {"profile": "shared-2g", "binder_repo": REPO, "binder_ref": "main"}
    await spawner.update_token_secret(AUTH_STATE)
    assert written == []
    spawner.user_options = {"profile": "shared-2g"}
    await spawner.update_token_secret(AUTH_STATE)
    assert len(written) == 1
