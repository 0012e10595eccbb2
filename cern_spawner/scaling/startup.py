"""Start GPU growth with the hub, not with its first spawner.

JupyterHub creates spawners only for running servers and for users who come by, so after a restart
with no server running a grown group would wait for the next visitor to be shrunk.
`cern_spawner.configure_hub(c)` calls `start_with_hub(c)`: the hub loads its config inside its
event loop, and the controller starts at the loop's next turn, from the hub's merged config
(`c.GPUScaling.*`, and the spawner's namespace and profiles, read from the config as CERNSpawner
reads them; no spawner is built).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from traitlets.config import LazyConfigValue

log = logging.getLogger(__name__)

# Where Kubernetes mounts the pod's namespace: KubeSpawner's default namespace inside a cluster.
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def start_with_hub(config) -> bool:
    """Schedule the controller's start; False when no event loop runs (a `jupyterhub` subcommand,
    or a test applying the config)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    loop.call_soon(_start, config)
    return True


def spawner_setting(config, name: str):
    """CERNSpawner's `name` as configured (sections Spawner < KubeSpawner < CERNSpawner, the later
    winning, as traitlets merges them), else the trait's static default."""
    from ..spawner import CERNSpawner  # imports kubespawner, which reads $KUBECONFIG at import

    value = CERNSpawner.class_traits()[name].default()
    for section in CERNSpawner.section_names():
        if config._has_section(section) and name in config[section]:
            setting = config[section][name]
            value = setting.get_value(value) if isinstance(setting, LazyConfigValue) else setting
    return value


def default_namespace() -> str:
    """KubeSpawner's default namespace: the hub pod's own, else "default" (outside a cluster)."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    except OSError:
        return "default"


def _start(config) -> None:
    from jupyterhub.app import JupyterHub

    from ..catalog_store import shared_store
    from .hub import gpu_scaling, hub_controller

    hub_log = log
    if JupyterHub.initialized():  # the merged config, command line and later lines included
        config = JupyterHub.instance().config
        hub_log = JupyterHub.instance().log
    try:
        settings = gpu_scaling(config)
        if not settings.enabled:
            return
        store = shared_store(
            spawner_setting(config, "profiles_path"),
            log=hub_log,
            min_interval=spawner_setting(config, "profiles_reload_interval"),
        )
        namespace = spawner_setting(config, "namespace") or default_namespace()
        # KubeSpawner loads the API client's configuration in its __init__; no spawner exists yet,
        # so load it as it would, or the shared client has no API server (relative URLs in a pod).
        from kubespawner.clients import load_config

        load_config(
            host=spawner_setting(config, "k8s_api_host"),
            ssl_ca_cert=spawner_setting(config, "k8s_api_ssl_ca_cert"),
            verify_ssl=spawner_setting(config, "k8s_api_verify_ssl"),
        )
        hub_controller(settings, namespace=namespace, store=store, log=hub_log)
    except Exception:  # the hub must still start; spawns will try again and report
        hub_log.exception("Could not start GPU growth with the hub")
