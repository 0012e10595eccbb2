"""prepare_image: resolve, reuse what the registry has, build what it lacks, and check the push."""

from __future__ import annotations

import json

import pytest
from traitlets.config import Config

from cern_spawner.binder.config import BinderConfig
from cern_spawner.binder.errors import BinderError, BuildFailed, ResolveError
from cern_spawner.binder.images import image_name
from cern_spawner.binder.launch import Launch, prepare_image, registry_client

REPO = "https://github.com/org/repo"
COMMIT = "0123456789abcdef" * 2 + "01234567"


class FakeRegistry:
    """manifest_exists answers from a script (one answer per call) and records the images asked."""

    def __init__(self, *answers: bool):
        self.answers, self.asked = list(answers), []

    async def manifest_exists(self, image: str) -> bool:
        self.asked.append(image)
        return self.answers.pop(0)


def make_config(**traits) -> BinderConfig:
    return BinderConfig(config=Config({"BinderConfig": {"registry": "registry.example.org", **traits}}))


async def launch(registry, *, resolve=None, builds=None):
    messages, builds = [], [] if builds is None else builds

    async def fake_resolve(repo_url, ref, time_limit):
        assert time_limit == 30
        return COMMIT

    async def fake_build(core, config, **kw):
        builds.append((core, kw))
        kw["report"]("Step 1/3")

    result = await prepare_image(
        make_config(),
        repo_url=REPO,
        ref="main",
        user="jane",
        namespace="ns",
        core="core-api",
        registry=registry,
        report=messages.append,
        resolve=resolve or fake_resolve,
        build=fake_build,
    )
    return result, messages, builds


IMAGE = image_name("registry.example.org", "binder-", REPO, COMMIT)


async def test_found_image_is_reused_without_a_build():
    registry = FakeRegistry(True)
    result, messages, builds = await launch(registry)
    assert result == Launch(REPO, "main", COMMIT, IMAGE, built=False)
    assert messages == [
        f"Resolved main of {REPO} to {COMMIT[:12]}",
        "Image found in the registry; no build needed.",
    ]
    assert builds == [] and registry.asked == [IMAGE]


async def test_missing_image_is_built_then_checked_again():
    registry = FakeRegistry(False, True)
    result, messages, builds = await launch(registry)
    assert result == Launch(REPO, "main", COMMIT, IMAGE, built=True)
    ((core, kw),) = builds
    assert core == "core-api"
    assert kw | {"report": None} == {
        "repo_url": REPO,
        "ref": "main",
        "commit": COMMIT,
        "image": IMAGE,
        "user": "jane",
        "namespace": "ns",
        "report": None,
    }
    assert "Step 1/3" in messages and messages[-1] == "Image built and pushed."
    assert registry.asked == [IMAGE, IMAGE]


async def test_build_without_push_fails():
    with pytest.raises(BuildFailed, match="no image was pushed to registry.example.org"):
        await launch(FakeRegistry(False, False))


async def test_resolve_errors_pass_through_before_any_lookup():
    async def unknown(repo_url, ref, time_limit):
        raise ResolveError("no branch")

    registry = FakeRegistry()
    with pytest.raises(ResolveError):
        await launch(registry, resolve=unknown)
    assert registry.asked == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, (None, None)),
        ({"username": "robot", "password": "s3cret-pw"}, ("robot", "s3cret-pw")),
        ("not json s3cret-pw", BinderError),
        ({"username": "robot"}, BinderError),
        ({"auths": {"127.0.0.1:5000": {"auth": "cm9ib3Q6czNjcmV0LXB3"}}}, ("robot", "s3cret-pw")),
        ({"auths": {"https://127.0.0.1:5000": {"auth": "cm9ib3Q6czNjcmV0LXB3"}}}, ("robot", "s3cret-pw")),
        (
            {"auths": {"127.0.0.1:5000": {"username": "robot", "password": "s3cret-pw"}}},
            ("robot", "s3cret-pw"),
        ),
        ({"auths": {"other.example": {"auth": "cm9ib3Q6czNjcmV0LXB3"}}}, BinderError),
        ({"auths": {"127.0.0.1:5000": {"auth": "not base64 s3cret-pw"}}}, BinderError),
        ({"auths": {"127.0.0.1:5000": {"auth": "cm9ib3Q="}}}, BinderError),
    ],
    ids=[
        "anonymous",
        "credentials",
        "not-json",
        "no-password",
        "docker-config",
        "docker-config-https-key",
        "docker-config-username",
        "docker-config-other-registry",
        "docker-config-bad-base64",
        "docker-config-no-password",
    ],
)
def test_registry_client_credentials(tmp_path, content, expected):
    traits = {"http_registries": ["127.0.0.1:5000"], "registry": "127.0.0.1:5000"}
    if content is not None:
        path = tmp_path / "creds.json"
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        traits["registry_credentials_path"] = str(path)
    config = make_config(**traits)
    if expected is BinderError:
        with pytest.raises(BinderError) as raised:
            registry_client(config)
        assert "s3cret-pw" not in str(raised.value)
        assert "creds.json" in str(raised.value)
        return
    client = registry_client(config)
    assert (client.username, client.password) == expected
    assert client.http_registries == {"127.0.0.1:5000"}
