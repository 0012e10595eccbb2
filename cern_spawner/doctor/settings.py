"""What the doctor checks, read from the hub's own configuration.

The doctor loads the hub's config file (`jupyterhub_config.py`: the chart's reads settings.json and
the mounted secrets) exactly as `jupyterhub --config FILE` would, and reads each setting as the hub
resolves it (class defaults, then the sections of the class's parents, the subclass's winning), so
it checks the hub that runs, not a second description of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from traitlets.config import Config, LazyConfigValue, PyFileConfigLoader

# Where the chart mounts the hub's config; `jupyterhub` itself defaults to ./jupyterhub_config.py.
CHART_CONFIG = Path("/etc/jupyterhub/jupyterhub_config.py")
CERN_AUTHENTICATORS = ("cern", "cern_spawner.auth.CERNAuthenticator", "cern_spawner.CERNAuthenticator")


@dataclass(frozen=True)
class Binder:
    registry: str
    http_registries: tuple[str, ...] = ()
    credentials_path: str = ""
    build_namespace: str = ""
    allowed_hosts: tuple[str, ...] = ()
    insecure_origins: tuple[str, ...] = ()


@dataclass(frozen=True)
class SSO:
    issuer: str
    # All three set: the hub never reads the discovery document, only these.
    authorize_url: str = ""
    token_url: str = ""
    jwks_uri: str = ""
    # tornado HTTPRequest options the hub uses with the SSO (CA bundle, validate_cert)
    request_kwargs: dict = field(default_factory=dict, compare=False)

    @property
    def explicit(self) -> bool:
        return bool(self.authorize_url and self.token_url and self.jwks_uri)


@dataclass(frozen=True)
class DoctorSettings:
    profiles: tuple[str, ...]
    namespace: str  # the notebooks' namespace
    default_image: str  # KubeSpawner.image: the image of profiles that name none
    openstack_cloud: str = ""  # empty: GPU growth is off
    clouds_yaml: str = ""
    kube_host: str = ""  # KubeSpawner.k8s_api_host: empty, from the kubeconfig or the pod
    sso: SSO | None = None  # None: the hub does not use CERNAuthenticator
    binder: Binder | None = None  # None: Binder launches are off
    registry_auth: str = ""  # a Docker config.json for image lookups; default: Binder's credentials


def load_config_file(path: str | Path) -> Config:
    """The hub's config as `jupyterhub --config path` loads it (the file's code runs)."""
    path = Path(path).resolve()
    return PyFileConfigLoader(path.name, path=str(path.parent)).load_config()


def configured(config: Config, cls: type, name: str):
    """`cls.name` as the hub resolves it: the trait's default, overridden by each config section of
    the class's hierarchy (a subclass's section winning, as traitlets merges them)."""
    value = cls.class_traits()[name].default()
    for section in cls.section_names():
        if config._has_section(section) and name in config[section]:  # reading would create it
            setting = config[section][name]
            value = setting.get_value(value) if isinstance(setting, LazyConfigValue) else setting
    return value


def from_config(config: Config) -> DoctorSettings:
    from ..auth import CERNAuthenticator
    from ..binder.config import BinderConfig
    from ..scaling.hub import gpu_scaling
    from ..scaling.startup import default_namespace
    from ..spawner import CERNSpawner

    scaling = gpu_scaling(config)
    binder = BinderConfig(config=config)  # validated as the hub validates it
    authenticator = (
        config.JupyterHub.get("authenticator_class") if config._has_section("JupyterHub") else None
    )
    is_cern = authenticator in CERN_AUTHENTICATORS or authenticator is CERNAuthenticator

    def sso(name: str) -> str:
        return configured(config, CERNAuthenticator, name)

    profiles = configured(config, CERNSpawner, "profiles_path")
    return DoctorSettings(
        profiles=tuple([profiles] if isinstance(profiles, str) else profiles),
        namespace=configured(config, CERNSpawner, "namespace") or default_namespace(),
        default_image=configured(config, CERNSpawner, "image"),
        openstack_cloud=scaling.openstack_cloud,
        clouds_yaml=scaling.openstack_clouds_yaml,
        kube_host=configured(config, CERNSpawner, "k8s_api_host") or "",
        sso=SSO(
            sso("issuer_url"),
            sso("authorize_url"),
            sso("token_url"),
            sso("jwks_uri"),
            {"validate_cert": sso("validate_server_cert"), **sso("http_request_kwargs")},
        )
        if is_cern
        else None,
        binder=Binder(
            registry=binder.registry,
            http_registries=tuple(binder.http_registries),
            credentials_path=binder.registry_credentials_path,
            build_namespace=binder.build_namespace,
            allowed_hosts=tuple(binder.allowed_hosts),
            insecure_origins=tuple(binder.insecure_origins),
        )
        if binder.registry
        else None,
        registry_auth=binder.registry_credentials_path if binder.registry else "",
    )
