"""JupyterHub configuration for the local sandbox (`make demo`, integration tests).

Production deployments use the Helm chart's configuration instead. The hub runs on this machine
and starts notebook pods in the sandbox cluster through CERNSpawner; the pods reach the hub on the
sandbox's pod-network gateway, and configurable-http-proxy reaches the pods on their own IPs.
"""

import json
import os
import secrets
from pathlib import Path

import kubernetes_asyncio.config.kube_config as kube_config

from cern_spawner import configure_hub
from sandbox.config import state_dir
from sandbox.nodeagent.network import PodNetwork

c = get_config()  # noqa: F821 (provided by JupyterHub)

here = Path(__file__).resolve().parent
sandbox_state = state_dir()  # $CERN_SANDBOX_STATE or the default, as `python -m sandbox` uses
try:
    sandbox = json.loads((sandbox_state / "sandbox.json").read_text())
except OSError as e:
    raise SystemExit(f"the sandbox is not running ({e}): start it with `python -m sandbox up`") from e
hub_dir = Path(os.environ.get("CERN_HUB_DIR", here / "build" / "hub"))
hub_dir.mkdir(parents=True, exist_ok=True)

# The hub process talks to the API server with the sandbox's admin kubeconfig; user pods get no
# credentials at all (CERNSpawner does not mount service-account tokens). KubeSpawner loads the
# default kubeconfig location, which kubernetes_asyncio reads from $KUBECONFIG when it is first
# imported: JupyterHub imports it before reading this file, so the default is set here too.
os.environ["KUBECONFIG"] = sandbox["kubeconfig"]
kube_config.KUBE_CONFIG_DEFAULT_LOCATION = sandbox["kubeconfig"]

c.KubeSpawner.namespace = sandbox["user_namespace"]
c.KubeSpawner.default_url = "/lab"
c.KubeSpawner.start_timeout = 120
c.KubeSpawner.http_timeout = 60

# GPU node groups grow through the sandbox's OpenStack simulator, over the same API as Magnum.
if "openstack" in sandbox:
    c.GPUScaling.openstack_cloud = "sandbox"
    c.GPUScaling.openstack_clouds_yaml = str(sandbox_state / "clouds.yaml")

gateway = PodNetwork(**sandbox["network"]).gateway
c.JupyterHub.hub_bind_url = f"http://{gateway}:{os.environ.get('CERN_HUB_PORT', '8081')}"
c.JupyterHub.bind_url = f"http://127.0.0.1:{os.environ.get('CERN_PROXY_PORT', '8000')}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ.get('CERN_PROXY_API_PORT', '8001')}"
c.ConfigurableHTTPProxy.command = [str(here / "node_modules" / ".bin" / "configurable-http-proxy")]
c.ConfigurableHTTPProxy.pid_file = str(hub_dir / "proxy.pid")

c.JupyterHub.db_url = f"sqlite:///{hub_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(hub_dir / "jupyterhub_cookie_secret")

proxy_url = f"http://127.0.0.1:{os.environ.get('CERN_PROXY_PORT', '8000')}"
if "keycloak" in sandbox:
    # CERN single sign-on: the sandbox's Keycloak, realm cern, client jupyterhub.
    from sandbox import keycloak

    kc = sandbox["keycloak"]
    c.CERNAuthenticator.issuer_url = kc["issuer"]
    c.CERNAuthenticator.client_id = kc["client_id"]
    # Read from its 0600 file: never through the environment, which child processes inherit.
    c.CERNAuthenticator.client_secret = Path(kc["client_secret_file"]).read_text().strip()
    c.CERNAuthenticator.oauth_callback_url = f"{proxy_url}/hub/oauth_callback"
    c.CERNAuthenticator.post_logout_redirect_uri = f"{proxy_url}/hub/login"
    # Test hubs listen on random ports: register this hub's URIs with the client before it starts.
    keycloak.allow_redirect(sandbox_state, c.CERNAuthenticator.oauth_callback_url)
    keycloak.allow_post_logout_redirect(sandbox_state, c.CERNAuthenticator.post_logout_redirect_uri)
    c.CERNAuthenticator.allowed_roles = set()  # every user of the realm may log in
    c.CERNAuthenticator.admin_roles = {"hub-admins"}
    c.CERNAuthenticator.exchange_audiences = [kc["exchange_audience"]]
    # Keycloak grants the audience only with the realm's client scope for it.
    c.CERNAuthenticator.exchange_scopes = {kc["exchange_audience"]: f"{kc['exchange_audience']}-audience"}

    # auth_state (the user's tokens) is encrypted with a key of this hub directory, kept in a 0600
    # file rather than JUPYTERHUB_CRYPT_KEY so that no key sits in the environment.
    key_file = hub_dir / "crypt_key"
    if not key_file.exists():
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    c.CryptKeeper.keys = [key_file.read_text().strip()]
else:
    # Fallback for a sandbox started without Keycloak: demo users with a shared password.
    c.JupyterHub.authenticator_class = "shared-password"
    c.SharedPasswordAuthenticator.user_password = "cern-demo"
    c.SharedPasswordAuthenticator.admin_password = "cern-spawner-demo-admin-password"
    c.Authenticator.allowed_users = {"alice", "bob"}
    c.Authenticator.admin_users = {"admin"}
    # Without single sign-on there are no roles: a group stands in.
    c.JupyterHub.load_groups = {"gpu-users": {"users": ["bob"]}}

# Repository launches (/hub/binder/v2/…, the picker's "Build from a git repository"): the sandbox's
# git server and OCI registry. No container engine here: the build pods run the sandbox builder,
# which pushes the repository's files as an image; the node agent unpacks them into $HOME.
if sandbox.get("registry") and sandbox.get("git"):
    c.BinderConfig.registry = sandbox["registry"]["host"]
    c.BinderConfig.http_registries = [sandbox["registry"]["host"]]
    c.BinderConfig.allowed_hosts = []  # the sandbox reaches no internet: only its own git server
    c.BinderConfig.insecure_origins = [sandbox["git"]["url"]]
    c.BinderConfig.builder_image = "sandbox/builder"
    c.BinderConfig.builder_command = sandbox["builder"]["command"]
    c.BinderConfig.engine_socket = ""
    # Builds share the notebooks' namespace here (allowed without an engine socket): one namespace
    # for the sandbox's tests to watch.
    c.BinderConfig.build_namespace = sandbox["user_namespace"]

# The spawner (CERNSpawner, profiles from ./profiles), single sign-on when the sandbox has it, the
# spawn page's progress template, the admins' catalog view at /hub/api/cern/catalog (scope read:hub;
# see docs/auth.md), the Binder routes when BinderConfig.registry is set above, and GPU growth
# started with the hub, so that it shrinks what an earlier hub grew even before anyone comes by.
# CERN_HUB_UNWIRED=1 leaves this out: the hub as it is before cern-spawner is added (the settings
# above only), to which tests/integration/test_existing_hub.py adds the operator guide's snippet.
if os.environ.get("CERN_HUB_UNWIRED") != "1":
    configure_hub(
        c,
        profiles=os.environ.get("CERN_PROFILES", str(here / "profiles")),
        authenticator="keycloak" in sandbox,
    )
