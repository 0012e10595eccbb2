"""Binder launches' configuration, set as `c.BinderConfig.*`.

The spawner makes one with `BinderConfig(parent=spawner)`, hub handlers with
`BinderConfig(config=handler.settings["config"])`; both read the same section of the hub's config.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from traitlets import Dict, Float, Int, List, TraitError, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from .images import image_name
from .options import token_pattern_problem

# The repo2docker release the default builder runs: quay.io publishes one tag per release.
REPO2DOCKER_IMAGE = "quay.io/jupyterhub/repo2docker:2025.12.0"
PLACEHOLDERS = ("repo_url", "ref", "commit", "image")
BUILD_NAMESPACE = "binder-builds"
_HOST_PATTERN = re.compile(
    r"(?:\*\.)?[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::[1-9][0-9]{0,4})?"
)
# Pod Security Admission "restricted" for a container (what build pods get without an engine socket).
RESTRICTED_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 1000,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


class BinderConfig(LoggingConfigurable):
    """Where Binder images live, which repositories may be built, and how build pods run."""

    # --- registry -------------------------------------------------------------------------------

    registry = Unicode(
        "",
        config=True,
        help="""
        Registry (host[:port], no scheme, no path) built images are pushed to and looked up in.
        Empty (default): Binder launches are off.
        """,
    )
    image_prefix = Unicode(
        "binder-",
        config=True,
        help="""
        Prefix of built images' repository names in the registry (e.g. "binder-" or "binder/"):
        images are <registry>/<prefix><slug>-<hash6>:<commit>. Default "binder-".
        """,
    )
    http_registries = List(
        Unicode(),
        config=True,
        help="""
        Registries (host[:port]) reached over plain http instead of https, e.g. the sandbox's local
        registry. Default: none (always https).
        """,
    )
    registry_credentials_path = Unicode(
        "",
        config=True,
        help="""
        JSON file {"username": ..., "password": ...} the hub uses to look images up in the registry,
        read at each use (a rotated Secret applies without restart) and never logged. Empty
        (default): anonymous lookups.
        """,
    )

    # --- which repositories ---------------------------------------------------------------------

    allowed_hosts = List(
        Unicode(),
        default_value=["github.com", "gitlab.cern.ch"],
        config=True,
        help="""
        Git hosts repositories may come from, over https on port 443; "*.example.org" allows any
        subdomain of example.org (not example.org itself); "host:port" allows that host on that
        port only (other ports are refused, so a link cannot aim the hub at an internal service).
        Default: github.com and gitlab.cern.ch.
        """,
    )
    insecure_origins = List(
        Unicode(),
        config=True,
        help="""
        Exact origins (http://host:port) also allowed over plain http, e.g. the sandbox's git
        server. Default: none.
        """,
    )
    github_host = Unicode(
        "github.com", config=True, help='Host of gh/<org>/<repo>/<ref> links (default "github.com").'
    )
    gitlab_host = Unicode(
        "gitlab.cern.ch",
        config=True,
        help='Host of gl/<project path>/<ref> links (default "gitlab.cern.ch", CERN\'s GitLab).',
    )
    default_profile = Unicode(
        "",
        config=True,
        help="""
        Slug of the profile link launches start with when the link names none. Empty (default): the
        catalog's default profile.
        """,
    )
    resolve_timeout = Float(
        30.0,
        config=True,
        help="Seconds to wait for a git server to resolve a ref to a commit (default 30).",
    )
    token_launches = List(
        Unicode(),
        config=True,
        help="""
        Repositories whose launches get the user's exchanged CERN tokens (mounted at
        CERNSpawner.token_mount_path) without the user ticking "Give this server my CERN tokens":
        "host[:port]/path" for one repository, "host[:port]/prefix/*" for every repository below a
        group or organisation (e.g. "github.com/cern/*"), "host/*" for a whole host (e.g.
        "gitlab.cern.ch/*"); matched without regard to case. Default: none, so a repository launch
        gets the tokens only when its user ticks the box. Plain (non-repository) spawns always get them.
        """,
    )

    @validate("token_launches")
    def _valid_token_launches(self, proposal):
        for pattern in proposal.value:
            problem = token_pattern_problem(pattern)
            if problem:
                raise TraitError(
                    f"BinderConfig.token_launches entries must be host/path or host/prefix/* ({problem}), "
                    f"got {pattern!r} in {proposal.value!r}"
                )
        return proposal.value

    # --- build pods -----------------------------------------------------------------------------

    builder_image = Unicode(
        REPO2DOCKER_IMAGE,
        config=True,
        help=f"""
        Image of build pods. Default: repo2docker's image, pinned ({REPO2DOCKER_IMAGE}); pin it
        to the release you run, never to a moving tag.
        """,
    )
    builder_command = List(
        Unicode(),
        default_value=[
            "repo2docker",
            "--no-run",
            "--push",
            "--ref",
            "{commit}",
            "--image-name",
            "{image}",
            "--user-id",
            "1000",
            "--user-name",
            "jovyan",
            "{repo_url}",
        ],
        config=True,
        help="""
        Command (argv, no shell) of the build pod's container. Each argument may hold the
        placeholders {repo_url}, {ref} (as the user wrote it), {commit} (what it resolved to) and
        {image} (the name to push; required); other braces are kept as written. Default:
        repo2docker building the commit as uid 1000 (jovyan) and pushing it, without running it.
        """,
    )
    builder_env = Dict(
        value_trait=Unicode(),
        key_trait=Unicode(),
        config=True,
        help="Extra environment variables of the builder container (default: none). Put no secrets here.",
    )
    engine_socket = Unicode(
        "",
        config=True,
        help="""
        Host path of a Docker or Podman socket mounted into build pods at the same path (what
        repo2docker uses with /var/run/docker.sock). A host's engine needs root in the build pod and
        gives the repository being built the node: allowed only with builds in a namespace of their
        own (build_namespace, not the notebooks') on dedicated, tainted nodes (build_node_selector
        and build_tolerations both set); otherwise the configuration is refused. Empty (default): no
        socket, and build pods run with the restricted security context (rootless BuildKit via
        buildkit_address, the recommended builder, or another rootless builder does the build).
        """,
    )
    buildkit_address = Unicode(
        "",
        config=True,
        help="""
        Address of a BuildKit daemon (e.g. tcp://buildkitd.binder:1234), given to the builder as
        BUILDKIT_HOST. Empty (default): not set.
        """,
    )
    push_secret = Unicode(
        "",
        config=True,
        help="""
        Name of a kubernetes.io/dockerconfigjson Secret (in the build namespace) holding the push
        credentials; mounted read-only into build pods, with DOCKER_CONFIG pointing at it. Empty
        (default): no credentials (a registry that accepts anonymous pushes).
        """,
    )
    build_namespace = Unicode(
        BUILD_NAMESPACE,
        config=True,
        help=f"""
        Namespace of build pods (default "{BUILD_NAMESPACE}": builds apart from the notebooks; it
        must exist, with the push Secret and the hub's rights to manage pods there). Empty: the
        spawner's namespace, shared with the notebooks (refused together with an engine_socket).
        """,
    )
    build_resources = Dict(
        default_value={
            "requests": {"cpu": "500m", "memory": "1Gi"},
            "limits": {"cpu": "2", "memory": "4Gi"},
        },
        config=True,
        help="""
        Resources of the builder container: {"requests": {...}, "limits": {...}} in Kubernetes
        quantities. Default: requests 0.5 CPU / 1 GiB, limits 2 CPU / 4 GiB.
        """,
    )
    build_node_selector = Dict(
        value_trait=Unicode(),
        key_trait=Unicode(),
        config=True,
        help="Node selector of build pods, e.g. a CPU node group (default: none, any node).",
    )
    build_tolerations = List(
        Dict(),
        config=True,
        help="Tolerations of build pods, as in a pod spec (default: none).",
    )
    build_timeout = Float(
        3600.0,
        config=True,
        help="""
        Seconds a build may take from pod creation (also its activeDeadlineSeconds); default 3600.
        """,
    )
    per_user_build_limit = Int(
        1,
        config=True,
        help="""
        Builds one user may have running at once (default 1). Joining a build already running for
        the same image does not count. Build pods are named per user slot, so the API server itself
        refuses a build past this limit even when two hub processes race.
        """,
    )
    max_concurrent_builds = Int(
        4,
        config=True,
        help="""
        Build pods that may run at once in the build namespace, all users together (default 4);
        a launch that would start one more is refused (HTTP 429) and may be retried later. Joining
        a build already running for the same image does not count.
        """,
    )
    log_tail_lines = Int(
        30,
        config=True,
        help="Lines of the build log shown to the user when a build fails (default 30).",
    )
    build_security_context = Dict(
        config=True,
        help="""
        Security context of the builder container. Default: with an engine socket, runAsUser 0
        (the socket needs root); without one (the default), Pod Security
        "restricted" (uid 1000, non-root, no privilege escalation, all capabilities dropped,
        seccomp RuntimeDefault).
        """,
    )

    @default("build_security_context")
    def _default_security_context(self):
        if self.engine_socket:
            return {"runAsUser": 0, "runAsNonRoot": False}
        return dict(RESTRICTED_CONTEXT)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Across traits, so checked once all are loaded (config sections load in any order).
        self._check_engine_socket(self.engine_socket)

    def _check_engine_socket(self, socket: str) -> None:
        """Refuse a host engine socket unless builds are fenced off from the notebooks."""
        if not socket:
            return
        notebooks = self._notebooks_namespace()
        problems = []
        if self.build_namespace in ("", notebooks):
            where = self.build_namespace or notebooks or "the spawner's namespace"
            problems.append(f"build pods run in the notebooks' namespace ({where!r})")
        if not self.build_node_selector or not self.build_tolerations:
            problems.append(
                "build pods are not confined to dedicated, tainted nodes "
                "(set both BinderConfig.build_node_selector and BinderConfig.build_tolerations)"
            )
        if problems:
            raise TraitError(
                f"BinderConfig.engine_socket {socket!r} would give every repository built the node's "
                f"container engine while {' and '.join(problems)}. Leave engine_socket empty and build "
                "rootless (BinderConfig.buildkit_address, see docs/binder.md, Build security), or run "
                "builds in their own namespace on a tainted build node pool."
            )

    def _notebooks_namespace(self) -> str | None:
        """The spawner's namespace when known (from the parent spawner or the loaded config)."""
        namespace = getattr(self.parent, "namespace", None)
        if isinstance(namespace, str) and namespace:
            return namespace
        for section in ("CERNSpawner", "KubeSpawner"):
            value = self.config.get(section, {}).get("namespace")
            if isinstance(value, str) and value:
                return value
        return None

    @property
    def enabled(self) -> bool:
        return bool(self.registry)

    # --- validation -----------------------------------------------------------------------------

    @validate("registry")
    def _valid_registry(self, proposal):
        value = proposal.value.strip().rstrip("/")
        if value:
            try:
                image_name(value, "binder-", "https://example.org/a/b", "0" * 40)
            except ValueError as e:
                raise TraitError(
                    f"BinderConfig.registry must be host[:port] (no scheme, no path), got {proposal.value!r}"
                ) from e
        return value

    @validate("image_prefix")
    def _valid_prefix(self, proposal):
        try:
            image_name("registry.example.org", proposal.value, "https://example.org/a/b", "0" * 40)
        except ValueError as e:
            raise TraitError(
                f"BinderConfig.image_prefix must be lowercase letters, digits, '.', '_', '-' and '/' "
                f"making a valid image repository name (e.g. 'binder-'), got {proposal.value!r}"
            ) from e
        return proposal.value

    @validate("allowed_hosts")
    def _valid_hosts(self, proposal):
        for host in proposal.value:
            if not _HOST_PATTERN.fullmatch(host) or int(host.partition(":")[2] or 1) > 65535:
                raise TraitError(
                    f"BinderConfig.allowed_hosts entries must be lowercase host names, optionally "
                    f"'*.' + a domain, optionally ':port', got {host!r} in {proposal.value!r}"
                )
        return proposal.value

    @validate("insecure_origins")
    def _valid_origins(self, proposal):
        for origin in proposal.value:
            try:
                parts = urlsplit(origin)
                ok = (
                    parts.scheme == "http"
                    and parts.hostname
                    and parts.port
                    and not parts.username
                    and f"http://{parts.netloc}" == origin
                )
            except ValueError:
                ok = False
            if not ok:
                raise TraitError(
                    f"BinderConfig.insecure_origins entries must be exact http://host:port origins "
                    f"(no path, no credentials), got {origin!r}"
                )
        return proposal.value

    @validate("builder_command")
    def _valid_command(self, proposal):
        command = proposal.value
        if not any("{image}" in arg for arg in command):
            raise TraitError(
                "BinderConfig.builder_command must be a non-empty argv with {image} in an argument, "
                f"got {command!r}"
            )
        return command

    @validate("build_timeout", "resolve_timeout")
    def _positive_seconds(self, proposal):
        if proposal.value <= 0:
            raise TraitError(
                f"BinderConfig.{proposal.trait.name} must be a positive number of seconds, "
                f"got {proposal.value!r}"
            )
        return proposal.value

    @validate("per_user_build_limit", "max_concurrent_builds", "log_tail_lines")
    def _positive_count(self, proposal):
        if proposal.value < 1:
            raise TraitError(f"BinderConfig.{proposal.trait.name} must be at least 1, got {proposal.value!r}")
        return proposal.value
