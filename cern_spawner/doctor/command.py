"""`cern-spawner doctor`: load the hub's config, build the clients, run the checks, print.

The argument parser is in cern_spawner/cli.py; this module only turns its arguments into inputs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import sys
from pathlib import Path

from . import report
from .plan import Clients, examine
from .result import failed
from .settings import CHART_CONFIG, from_config, load_config_file

# Where the hub's config file is, when --config is not given.
CONFIG_ENV = "CERN_SPAWNER_HUB_CONFIG"


def default_config() -> Path:
    """$CERN_SPAWNER_HUB_CONFIG, else the chart's /etc/jupyterhub/jupyterhub_config.py when it
    exists, else ./jupyterhub_config.py (where `jupyterhub` looks)."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return CHART_CONFIG if CHART_CONFIG.is_file() else Path("jupyterhub_config.py")


async def kube_client(kubeconfig: str, host: str):
    """(ApiClient, "") as the hub would make it, or (None, why): --kubeconfig, else the pod's
    service account, else $KUBECONFIG or ~/.kube/config."""
    from kubernetes_asyncio import client, config

    configuration = client.Configuration()
    try:
        if kubeconfig:
            await config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        else:
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException:
                await config.load_kube_config(client_configuration=configuration)
    except (config.ConfigException, OSError, TypeError) as e:
        return None, f"no Kubernetes configuration ({e})"
    if host:
        configuration.host = host
    return client.ApiClient(configuration), ""


async def _examine(settings, kubeconfig: str, per_check: float):
    api, why = await kube_client(kubeconfig, settings.kube_host)
    try:
        return await examine(settings, Clients(api, why), per_check=per_check)
    finally:
        if api is not None:
            await api.close()


def run(args) -> int:
    path = Path(args.config) if args.config else default_config()
    try:
        settings = from_config(load_config_file(path))
    except Exception as e:  # the hub would not start either: one row saying so
        results = [
            failed("hub config", f"{path}: {type(e).__name__}: {e}", f"fix {path} or pass --config FILE.")
        ]
    else:
        if args.registry_auth:
            settings = dataclasses.replace(settings, registry_auth=args.registry_auth)
        results = asyncio.run(_examine(settings, args.kubeconfig or "", args.timeout))
    if args.json:
        print(report.as_json(results))
    else:
        print(report.table(results, width=shutil.get_terminal_size((120, 24)).columns))
    sys.stdout.flush()
    return report.exit_status(results)
