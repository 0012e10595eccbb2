"""The KubeSpawner (and JupyterHub) internals cern-spawner relies on, each pinned by a test.

These names are not public API: an upgrade may rename or reshape them without notice. Each row
below names the internal, where we use it, and what we assume; a failure here says which of our
modules must change before the dependency range in pyproject.toml may widen
(docs/architecture.md, "KubeSpawner internals we use").
"""

from __future__ import annotations

import inspect
import re
from types import SimpleNamespace

import pytest
from jupyterhub.utils import exponential_backoff
from kubespawner import KubeSpawner, clients, slugs
from kubespawner.reflector import ResourceReflector
from kubespawner.spawner import PodReflector

from cern_spawner.scaling.watch import kubespawner_pods
from cern_spawner.web.failures import is_pod_start_deadline

# (internal, our user, its parameters after self, coroutine?)
METHODS = [
    ("_make_create_pod_request", "kube_create.AdoptingCreates", ["pod", "request_timeout"], True),
    ("_make_create_pvc_request", "kube_create.AdoptingCreates", ["pvc", "request_timeout"], True),
    ("_make_create_resource_request", "kube_create.AdoptingCreates", ["kind", "manifest"], True),
    ("_get_profile", "spawner, binder.spawning", ["slug", "profile_list"], False),
    ("_get_initialized_profile_list", "spawner, binder.spawning", ["profile_list"], False),
    ("_validate_user_options", "spawner.load_user_options", ["profile_list"], False),
    ("_load_profile", "spawner.load_user_options", ["slug", "profile_list"], False),
    ("_options_from_form", "binder.spawning", ["formdata"], False),
    ("_get_reflector_key", "scaling.watch.kubespawner_pods", ["kind"], False),
    ("_expand_user_properties", "spawner (a string without fields)", ["template", "slug_scheme"], False),
]


@pytest.mark.parametrize(("name", "user", "parameters", "coroutine"), METHODS, ids=[m[0] for m in METHODS])
def test_kubespawner_methods_we_override_or_call(name, user, parameters, coroutine):
    method = getattr(KubeSpawner, name, None)
    assert method is not None, f"KubeSpawner.{name} is gone: {user} uses it"
    assert list(inspect.signature(method).parameters)[1:] == parameters, f"{user} calls {name}{parameters}"
    assert inspect.iscoroutinefunction(method) is coroutine, f"{user} expects {name} coroutine={coroutine}"


@pytest.mark.parametrize("per_user_namespaces", [False, True], ids=["hub-namespace", "user-namespaces"])
def test_our_pod_watch_registers_under_kubespawners_reflector_key(per_user_namespaces):
    """scaling.watch computes KubeSpawner's key for its pod reflector without a spawner; it must be
    the key KubeSpawner itself looks up, or KubeSpawner would start a second watch of pods."""
    config = {"KubeSpawner": {"enable_user_namespaces": per_user_namespaces}}
    fake = SimpleNamespace(enable_user_namespaces=per_user_namespaces, namespace="users")
    assert kubespawner_pods(config, "users")["share_as"] == KubeSpawner._get_reflector_key(fake, "pods")


def test_kubespawner_keeps_its_reflectors_in_one_class_dict():
    assert isinstance(KubeSpawner.__dict__.get("reflectors"), dict)  # scaling.watch registers ours there
    # spawner, restart and kube_create read it
    assert isinstance(KubeSpawner.__dict__.get("pod_reflector"), property)


def test_the_pod_reflector_shape_we_read_and_fill():
    assert isinstance(PodReflector.__dict__.get("pods"), property)  # a mapping "namespace/name" -> pod dict
    source = inspect.getsource(ResourceReflector)
    assert "self.first_load_future = asyncio.Future()" in source  # scaling.watch resolves it
    assert "self.resources = {" in source  # scaling.watch keeps its pods there


@pytest.mark.parametrize(
    ("function", "parameters"),
    [
        (clients.load_config, ["host", "ssl_ca_cert", "verify_ssl"]),  # scaling.startup
        (clients.shared_client, ["ClientType", "args", "kwargs"]),  # scaling.hub
        (slugs.safe_slug, ["name", "is_valid", "max_length"]),  # auth.token_secret
    ],
    ids=["load_config", "shared_client", "safe_slug"],
)
def test_kubespawner_helpers_we_import(function, parameters):
    assert list(inspect.signature(function).parameters) == parameters


def test_kubespawner_sets_the_start_future_we_read():
    """CERNSpawner.progress asks whether the start succeeded through KubeSpawner's `_start_future`
    (set by KubeSpawner.start); it waits for a start through JupyterHub's `_spawn_pending`."""
    assert "self._start_future = asyncio.ensure_future(self._start())" in inspect.getsource(KubeSpawner.start)
    from jupyterhub.handlers.base import BaseHandler
    from jupyterhub.spawner import Spawner

    assert Spawner._spawn_pending is False
    assert "spawner._spawn_pending = True" in inspect.getsource(BaseHandler.spawn_single_user)


def test_jupyterhub_sets_the_hub_start_future_the_culler_awaits():
    """The culler (culling.hub.hub_started) waits for the hub's API through JupyterHub's
    `_start_future`: made in initialize, resolved at the end of start."""
    from jupyterhub.app import JupyterHub

    assert "self._start_future = asyncio.Future()" in inspect.getsource(JupyterHub.initialize)
    assert "self._start_future.set_result(None)" in inspect.getsource(JupyterHub.start)


async def test_kubespawners_wait_for_its_pod_is_known_by_its_words():
    """CERNSpawner.start reads KubeSpawner's wait for the pod to run (the start's own start_timeout)
    as the start's deadline by its words (web.failures.is_pod_start_deadline); other timeouts of
    KubeSpawner's (its request retries: "Could not create pod …") keep theirs."""
    source = inspect.getsource(KubeSpawner._start)
    assert re.search(r"ref_key = f['\"]\{self\.namespace\}/\{self\.pod_name\}['\"]", source)
    assert re.search(r"f['\"]pod \{ref_key\} did not start in \{self\.start_timeout\} seconds!['\"]", source)
    assert re.search(r"f['\"]Could not create pod \{ref_key\}['\"]", source)
    with pytest.raises(TimeoutError) as waited:  # JupyterHub's backoff says exactly its fail message
        await exponential_backoff(lambda: False, "pod u/p did not start in 300 seconds!", timeout=0.01)
    assert is_pod_start_deadline(waited.value, "u/p", 300)


def test_kubespawners_own_form_render_hands_the_template_the_saved_options():
    """With a static profile_list KubeSpawner renders our picker (form.html) itself, and the picker
    preselects the saved profile and choices from `user_options` (test_web_picker). KubeSpawner
    7.0 passed only `profile_list`: one reason the range starts at 7.1."""
    source = inspect.getsource(KubeSpawner._render_options_form)
    assert re.search(r"\.render\(\s*profile_list=profile_list,\s*user_options=self\.user_options", source)
