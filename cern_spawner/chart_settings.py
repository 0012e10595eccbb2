"""The Helm chart's hub configuration: its settings (chart values, settings.json) and mounted
secrets turned into `c`, then `configure_hub`.

The chart's jupyterhub_config.py only reads settings.json and calls `apply_chart_settings`; the
chart's tests call it on rendered settings and a directory of secret files. Every secret is a file
under `secrets` (mounted Secrets, one file per key): none is passed through the environment, which
child processes inherit.
"""

from __future__ import annotations

from pathlib import Path

from traitlets.config import Config

from .configure import _extend, configure_hub
from .smoke.service import register_smoke_service


def apply_chart_settings(c: Config, settings: dict, secrets: Path) -> None:
    def secret(name: str) -> str:
        return (secrets / name).read_text().strip()

    # Proxy and hub run in their own pods; the proxy's API is reached through its Service.
    c.JupyterHub.hub_bind_url = "http://:8081"
    c.JupyterHub.hub_connect_url = f"http://{settings['hubService']}:8081"
    c.ConfigurableHTTPProxy.should_start = False
    c.ConfigurableHTTPProxy.api_url = f"http://{settings['proxyApiService']}:8001"
    c.ConfigurableHTTPProxy.auth_token = secret("hub/proxy-token")
    c.JupyterHub.cookie_secret = bytes.fromhex(secret("hub/cookie-secret"))
    c.JupyterHub.cleanup_servers = False  # a hub restart keeps the notebooks running
    if settings["https"]:
        # Users reach the hub over https (at the proxy, the load balancer or the ingress) while the
        # hub itself sees plain HTTP: say so, or its cookies would lack the Secure flag.
        # (JupyterHub's handlers read cookie_options from the tornado settings, for every cookie.)
        c.JupyterHub.tornado_settings = {"cookie_options": {"secure": True}}
    if settings["db"] == "postgres":
        c.JupyterHub.db_url = secret("db/db-url")
    else:
        c.JupyterHub.db_url = "sqlite:////srv/jupyterhub/jupyterhub.sqlite"

    _notebooks(c, settings)
    if settings["openstackCloud"]:
        c.GPUScaling.openstack_cloud = settings["openstackCloud"]
        c.GPUScaling.openstack_clouds_yaml = str(secrets / "openstack" / "clouds.yaml")
    if settings.get("clusterApiVersion"):  # the management cluster's kubeconfig: a file, never env
        c.GPUScaling.cluster_api_kubeconfig = str(secrets / "cluster-api" / "kubeconfig")
        c.GPUScaling.cluster_api_version = settings["clusterApiVersion"]

    # CERN single sign-on.
    c.CERNAuthenticator.issuer_url = settings["issuerUrl"]
    c.CERNAuthenticator.client_id = settings["clientId"]
    c.CERNAuthenticator.client_secret = secret("oidc/client-secret")
    if settings["publicUrl"]:
        c.CERNAuthenticator.oauth_callback_url = f"{settings['publicUrl']}/hub/oauth_callback"
        c.CERNAuthenticator.post_logout_redirect_uri = f"{settings['publicUrl']}/hub/login"
    c.CERNAuthenticator.allowed_roles = set(settings["allowedRoles"])
    c.CERNAuthenticator.admin_roles = set(settings["adminRoles"])
    c.CERNAuthenticator.exchange_audiences = settings["exchangeAudiences"]
    c.CERNAuthenticator.exchange_scopes = settings["exchangeScopes"]
    c.CryptKeeper.keys = [secret("crypt-key/crypt-key")]
    if settings.get("metricsScraper"):
        _metrics_scraper(c, secret("metrics/token"))
    if settings.get("smoke"):
        smoke = settings["smoke"]
        register_smoke_service(c, secret("smoke/token"), smoke["user"], smoke.get("roles") or ())

    # Binder-from-git launches (/hub/binder/v2/…, the picker's repository section), on with
    # binder.registry. Registry push credentials are mounted at secrets/registry/.dockerconfigjson.
    binder = settings["binder"]
    if binder:
        _binder(c, binder, secrets)

    # The culler (culling.*): per-profile timeouts are in the catalog; these are its rounds' timing.
    culling = settings.get("culling") or {"enabled": True}
    for key, trait in (("interval", "interval"), ("warnBefore", "warn_before"), ("recent", "recent")):
        if key in culling:
            c.Culling[trait] = culling[key]
    configure_hub(c, profiles="/etc/cern-spawner/profiles", binder=bool(binder), culling=culling["enabled"])

    # hub.config: c.Class.trait = value for each entry, after the chart's own settings.
    for cls, traits in settings["config"].items():
        for trait, value in traits.items():
            if not (cls.isidentifier() and trait.isidentifier()):
                raise ValueError(
                    f"hub.config: {cls!r}.{trait!r} is not a Class.trait pair of Python identifiers"
                )
            c[cls][trait] = value


def _notebooks(c: Config, settings: dict) -> None:
    c.KubeSpawner.namespace = settings["namespace"]
    # Which release made a pod: `helm uninstall` stops this release's notebooks (hook-stop-servers.yaml).
    c.KubeSpawner.common_labels = {"app": "jupyterhub", "heritage": "jupyterhub", **settings["releaseLabels"]}
    c.KubeSpawner.default_url = "/lab"
    c.KubeSpawner.image = settings["singleuserImage"]
    c.KubeSpawner.image_pull_policy = settings["singleuserImagePullPolicy"]
    # Volumes and mounts as dicts (by name): a profile's own volumes (the catalog's `volumes`) are
    # merged into these by KubeSpawner, where lists would replace them.
    c.KubeSpawner.volumes = {}
    c.KubeSpawner.volume_mounts = {}
    storage = settings["storage"]
    if storage["type"] == "dynamic":
        # A claim per user server, made at its first start and kept across stops (deleted with the
        # user); the pod's fsGroup (CERNSpawner.fs_gid) makes it writable by the notebook user.
        c.KubeSpawner.storage_pvc_ensure = True
        c.KubeSpawner.storage_capacity = storage["capacity"]
        c.KubeSpawner.storage_access_modes = ["ReadWriteOnce"]
        if storage["storageClass"]:  # empty: the cluster's default StorageClass
            c.KubeSpawner.storage_class = storage["storageClass"]
        c.KubeSpawner.volumes["home"] = {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}
        c.KubeSpawner.volume_mounts["home"] = {"name": "home", "mountPath": storage["homeMountPath"]}


def _binder(c: Config, binder: dict, secrets: Path) -> None:
    c.BinderConfig.registry = binder["registry"]
    c.BinderConfig.image_prefix = binder["imagePrefix"]
    c.BinderConfig.allowed_hosts = binder["allowedHosts"]
    c.BinderConfig.token_launches = binder["tokenLaunches"]
    c.BinderConfig.default_profile = binder["defaultProfile"]
    c.BinderConfig.per_user_build_limit = binder["perUserBuildLimit"]
    c.BinderConfig.max_concurrent_builds = binder["maxConcurrentBuilds"]
    c.BinderConfig.build_timeout = float(binder["buildTimeout"])
    # The hub's own lookups use the same Docker config.json as the pushes (read at each use).
    c.BinderConfig.registry_credentials_path = str(secrets / "registry" / ".dockerconfigjson")
    # Build pods mount the push Secret by name, so it must exist in their namespace too.
    c.BinderConfig.push_secret = binder["pushSecret"]
    c.BinderConfig.build_namespace = binder["buildNamespace"]
    if binder["builderImage"]:  # empty: the hub's pinned repo2docker release
        c.BinderConfig.builder_image = binder["builderImage"]
    c.BinderConfig.engine_socket = binder["engineSocket"]
    c.BinderConfig.buildkit_address = binder["buildkitAddress"]
    if binder["buildResources"]:
        c.BinderConfig.build_resources = binder["buildResources"]
    c.BinderConfig.build_node_selector = binder["buildNodeSelector"]
    c.BinderConfig.build_tolerations = binder["buildTolerations"]


def _metrics_scraper(c: Config, token: str) -> None:
    """Prometheus' identity on /hub/metrics (metrics.serviceMonitor / metrics.token): a hub service
    holding only the read:metrics scope, its token read from the mounted Secret."""
    _extend(c.JupyterHub, "services", [{"name": "metrics-scraper", "api_token": token}])
    role = {"name": "metrics-scraper", "scopes": ["read:metrics"], "services": ["metrics-scraper"]}
    _extend(c.JupyterHub, "load_roles", [role])
