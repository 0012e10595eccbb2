"""CERNSpawner: KubeSpawner with profiles from the admin-edited catalog, offered and enforced by role."""

from __future__ import annotations

import asyncio
import copy
import time

from kubespawner import KubeSpawner
from traitlets import Dict, Enum, Float, List, Unicode, default

from . import metrics, restart
from .binder.spawning import BinderSpawnerMixin
from .bounded import Bounded
from .catalog import allowed_profiles, to_profile_list
from .catalog.to_kubespawner import NODE_GROUP_LABEL
from .catalog_store import CatalogStore, shared_store
from .errors import Refused
from .kube_connections import DEFAULT_KEEPALIVE_S, keep_connections, skip_environment_lookups
from .kube_create import AdoptingCreates
from .logsafe import install_refusal_filter, join_hub_log
from .options import OptionsRefused, check_user_options, override_keys
from .options_form import OptionsForm
from .pod_events import PodEventsFirst
from .quota import hooks as quota
from .scaling.hub import scaled_groups, shared_controller
from .spawn_state import SpawnState
from .spawner_tokens import ExchangedTokens
from .waiting import shared_tick, until
from .web import PICKER_TEMPLATE_DIR
from .web.cards import with_cards
from .web.failures import (
    ClusterTimedOut,
    GrowthImpossible,
    StartTimedOut,
    is_pod_start_deadline,
    own_deadline,
    timeout_message,
)
from .web.progress_stream import SpawnPlan, SpawnStory, merged_progress

# The uid/gid of the Jupyter Docker Stacks user (jovyan, group users): images run as them out of the box.
NB_UID = 1000
NB_GID = 100


# A trait never set nor read before a profile overrode it: going back means to its default.
UNSET = object()

# Exceptions that mean "the user may not do this": logged as one warning line, never a traceback.
REFUSALS = (Refused,)


class CERNSpawner(
    OptionsForm, BinderSpawnerMixin, ExchangedTokens, AdoptingCreates, PodEventsFirst, KubeSpawner
):
    """Spawn single-user servers on a Magnum cluster: one profile per node group, restricted pods."""

    profiles_path = List(
        Unicode(),
        default_value=["/etc/cern-spawner/profiles"],
        config=True,
        help="""
        Files or directories (all *.yaml inside, merged in name order) holding the profile catalog.
        The default is where the Helm chart mounts the profiles ConfigMap. Edits are applied while
        the hub runs; an edit that fails validation is refused and the previous catalog is kept.
        """,
    )
    profiles_reload_interval = Float(
        1.0,
        config=True,
        help="Seconds between checks of the profile files for edits (default 1 s: edits apply within ~2 s).",
    )
    roles_source = Enum(
        ["groups", "auth_state"],
        default_value="groups",
        config=True,
        help="""
        Where a user's roles (matched against a profile's allowed_roles) come from: "groups", the
        user's JupyterHub groups (the CERN authenticator syncs roles into groups), or "auth_state",
        the list under `auth_state_roles_key` in the user's auth state. Missing or malformed roles
        count as no roles: role-gated profiles are then refused.
        """,
    )
    auth_state_roles_key = Unicode(
        "roles",
        config=True,
        help='Key of the roles list in auth_state when roles_source is "auth_state" (default "roles").',
    )
    fixed_roles = Dict(
        value_trait=List(Unicode()),
        key_trait=Unicode(),
        default_value={},
        config=True,
        help="""
        Roles the hub's configuration gives to named users, {username: [role, ...]}, added to those
        from `roles_source`. For users that never log in through single sign-on, such as the smoke
        user (register_smoke_service's `roles`, the chart's smoke.roles), so that profiles with
        allowed_roles can be smoked. Default {}: every role comes from `roles_source`.
        """,
    )
    spread_when_unsatisfiable = Enum(
        ["ScheduleAnyway", "DoNotSchedule"],
        default_value="ScheduleAnyway",
        config=True,
        help="""
        whenUnsatisfiable of the zone topology spread given to shared profiles' pods. The default,
        ScheduleAnyway, prefers an even spread but never keeps a pod pending for it.
        """,
    )

    # Deprecated: GPU growth is hub-level (`c.GPUScaling.*`), which reads these from the
    # CERNSpawner section and warns. Kept as traits so that old configs load without traitlets'
    # "not recognized" warning.
    openstack_cloud = Unicode("", config=True, help="Deprecated in 0.1.0: use GPUScaling.openstack_cloud.")
    openstack_clouds_yaml = Unicode(
        "", config=True, help="Deprecated in 0.1.0: use GPUScaling.openstack_clouds_yaml."
    )
    scaling_interval = Float(2.0, config=True, help="Deprecated in 0.1.0: use GPUScaling.interval.")
    scaling_grace_period = Float(600.0, config=True, help="Deprecated in 0.1.0: use GPUScaling.grace_period.")

    token_mount_path = Unicode(
        "/run/secrets/cern-tokens",
        config=True,
        help="""
        Where the notebook finds the tokens the hub obtained by token exchange (one
        `<audience>.token` file each, read-only, renewed at each refresh). Given only when the
        user has exchanged tokens (CERNAuthenticator.exchange_audiences).
        """,
    )

    k8s_api_keepalive = Float(
        DEFAULT_KEEPALIVE_S,
        config=True,
        help="""
        Seconds an idle connection to the Kubernetes API server is kept for the next request
        (default 45 s, below the API server's 90 s and an OpenStack Octavia load balancer's 50 s;
        KubeSpawner's client keeps 15 s). Spawns a minute apart then reuse connections instead of
        each opening a TLS session. 0 leaves the client's own setting.
        """,
    )

    # (catalog version, slugs, spread) -> profile_list; per process: versions and role mixes are few
    _profile_list_cache: Bounded[list] = Bounded(max_entries=256)

    def __init__(self, *args, **kwargs):
        self.spawn_state = SpawnState()  # this start's; a new one at each start (spawn_state.py)
        # Each overridden trait's configured value, recorded before a profile first changed it, and
        # the traits this start's profile may override (restored at the next start).
        self._pristine_traits: dict = {}
        self._overridden_traits: set[str] = set()
        super().__init__(*args, **kwargs)
        # KubeSpawner's client is shared by every spawner: the first sets it, the others find it set.
        keep_connections(self.api, self.k8s_api_keepalive)
        skip_environment_lookups(self.api)
        # JupyterHub logs a refused spawn as an error with a traceback; ours are the user's doing.
        install_refusal_filter(self.log, REFUSALS)
        join_hub_log(self.log)
        # configure_hub starts GPU growth with the hub; in a hub wired by hand, with its first spawner.
        shared_controller(self, self.log)

    # -- the catalog, per user ---------------------------------------------------------------
    @property
    def catalog_store(self) -> CatalogStore:
        return shared_store(self.profiles_path, log=self.log, min_interval=self.profiles_reload_interval)

    async def user_roles(self) -> set[str]:
        return await self._sourced_roles() | set(self.fixed_roles.get(self.user.name, ()))

    async def _sourced_roles(self) -> set[str]:
        if self.roles_source == "groups":
            return {group.name for group in self.user.groups}
        auth_state = await self.user.get_auth_state() or {}
        roles = auth_state.get(self.auth_state_roles_key)
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            if roles is not None:
                self.log.warning("Ignoring malformed roles in auth_state of %s: %r", self.user.name, roles)
            return set()
        return set(roles)

    async def _offered(self) -> list[dict]:
        """The profile_list this user may choose from, shared: callers must not modify it."""
        catalog = self.catalog_store.current()
        allowed = allowed_profiles(catalog, await self.user_roles())
        key = (catalog.version, tuple(p.slug for p in allowed), self.spread_when_unsatisfiable)
        offered = CERNSpawner._profile_list_cache.get(key)
        if offered is None:
            profile_list = to_profile_list(
                catalog, allowed, spread_when_unsatisfiable=self.spread_when_unsatisfiable
            )
            # with what the picker shows per profile
            offered = CERNSpawner._profile_list_cache.put(key, with_cards(catalog, profile_list))
        return offered

    async def offered_profile_list(self, spawner=None) -> list[dict]:
        """The KubeSpawner profile_list this user may choose from (a fresh copy each call)."""
        # Handed to KubeSpawner and to anyone configuring hooks: a copy, so nobody edits the cache.
        return copy.deepcopy(await self._offered())

    @default("profile_list")
    def _default_profile_list(self):
        return self.offered_profile_list

    @default("additional_profile_form_template_paths")
    def _default_profile_form_paths(self):
        return [PICKER_TEMPLATE_DIR]  # the picker's form.html replaces KubeSpawner's radio list

    # -- server-side checks, before anything is created ---------------------------------------
    @default("apply_user_options")
    def _default_apply_user_options(self):
        return self._check_user_options

    @default("options_from_form")
    def _default_options_from_form(self):
        return self.binder_options_from_form  # the form's (or query's) repository fields kept

    async def _check_user_options(self, spawner, user_options):
        catalog = self.catalog_store.current()
        offered = await self._offered()
        try:
            check_user_options(user_options or {}, catalog, offered)
        except OptionsRefused as e:
            self.log.warning("Refused server options %r for %s: %s", user_options, self._log_name, e.message)
            raise
        binder = self.check_binder(user_options)
        self._restore_overridden_traits()
        # JupyterHub checks the options right before start(): this start's state begins here.
        entry = self._chosen_entry(user_options, offered)
        self._record_pristine_traits(entry)
        plan = self._plan(entry)
        await quota.check(self, plan)  # GPU quota: 403 before anything is created
        self.spawn_state = SpawnState(plan=plan, binder_request=binder)
        if plan is not None and plan.start_timeout:
            # JupyterHub reads start_timeout right after calling start(), before KubeSpawner applies
            # the profile's overrides: the profile's timeout must be set by now to be the deadline.
            self.start_timeout = plan.start_timeout
        if binder:
            # JupyterHub's start timeout covers the whole start: the build comes on top of the pod's wait.
            config = self.binder_config
            self.start_timeout = int(self.start_timeout + config.resolve_timeout + config.build_timeout)

    def _restore_overridden_traits(self) -> None:
        """Undo the previous spawn's profile overrides before KubeSpawner applies the new profile.

        The same spawner object serves every start of a server, and KubeSpawner applies overrides
        onto it (merging dicts), so a CPU spawn after a GPU spawn would keep the GPU limits,
        toleration and node selector. Each trait the previous start's profile may have overridden
        is reset to its configured value, recorded before any profile touched it; other traits are
        left alone (resetting every trait any offered profile may override cost milliseconds).
        """
        pristine = self._pristine_traits
        # A repository launch sets the image and a longer start timeout, and every start gives the
        # notebook's check the start's remaining time (http_timeout): reset them as well.
        for name in self._overridden_traits | {"image", "start_timeout", "http_timeout"}:
            if name not in pristine:
                pristine[name] = self._configured_value(name)
            elif pristine[name] is UNSET:
                setattr(self, name, self.trait_defaults(name))
            else:
                setattr(self, name, copy.deepcopy(pristine[name]))
        self._overridden_traits = set()

    def _configured_value(self, name: str):
        """A copy of the trait's value; UNSET if it was never set nor read (it is then its default,
        computed only if a later start must go back to it)."""
        return copy.deepcopy(getattr(self, name)) if self.trait_has_value(name) else UNSET

    def _record_pristine_traits(self, entry: dict | None) -> None:
        """Before KubeSpawner applies `entry`: keep the configured value of each trait it may override."""
        if entry is None:
            return
        names = {name for name in override_keys(entry) if self.has_trait(name)}
        for name in names - self._pristine_traits.keys():
            self._pristine_traits[name] = self._configured_value(name)
        self._overridden_traits = names

    def _chosen_entry(self, user_options, offered: list[dict]) -> dict | None:
        """The offered entry KubeSpawner will apply: the one asked for, else the offered default
        (the first marked default, as KubeSpawner's `_get_profile` picks); None if there is none."""
        if not offered:
            return None
        try:
            # `offered` already has its default marked (to_profile_list): no initialized copy needed.
            return self._get_profile((user_options or {}).get("profile"), offered)
        except (ValueError, StopIteration):
            return None

    # -- GPU growth: start, progress ----------------------------------------------------------
    def _plan(self, entry: dict | None) -> SpawnPlan | None:
        """The profile of `entry` (`_chosen_entry`) and the scaled node group its pod waits on."""
        if entry is None:
            return None
        catalog = self.catalog_store.current()
        profile = catalog.profile(entry.get("slug") or "")
        if profile is None:
            return None
        group = None
        if profile.gpu_units:  # whole GPUs, a MIG slice or a shared GPU: its group may grow
            group = next((g.name for g in scaled_groups(catalog) if g.name == profile.node_group), None)
        timeout = (entry.get("kubespawner_override") or {}).get("start_timeout")
        return SpawnPlan(profile.slug, profile.display_name, profile.gpu_units, timeout, group)

    async def poll(self):
        status = await super().poll()
        if status is None and self._check_pending and not self._spawn_pending:
            # JupyterHub's start-up check of a server a restarted hub found (restart.py).
            plan = self._plan(self._chosen_entry(self.user_options, await self._offered()))
            status = await restart.resume_after_restart(self, plan, super().poll)
            if status is None:
                await restart.account_after_restart(self, plan)
        return status

    async def load_user_options(self):
        entry = None
        if getattr(self.profile_list, "__func__", None) is CERNSpawner.offered_profile_list:
            entry = self._chosen_entry(self.user_options, await self._offered())
        if entry is None:
            await super().load_user_options()
        else:
            # KubeSpawner's own load_user_options, on a list of the one entry it applies: it would
            # deep-copy every offered profile (twice, through offered_profile_list) to use one.
            profile_list = self._get_initialized_profile_list([entry])
            self._validate_user_options(profile_list)
            self._load_profile(entry["slug"], profile_list)
        launch = self.spawn_state.binder_launch
        if launch is not None:
            self.image = launch.image  # over any image the profile sets

    async def start(self):
        state = self.spawn_state
        state.started = True
        plan = state.plan
        controller = shared_controller(self, self.log) if plan and plan.group else None
        # Our own deadline, just before JupyterHub's, so the user reads why the start gave up. The
        # steps run in this task (no task of their own: a spawn's cost is mostly such overhead).
        budget = own_deadline(self.start_timeout)
        ours = asyncio.timeout(budget)
        # Per catalog profile, for cern_spawner_spawn_duration_seconds ("none": no catalog profile).
        with metrics.timed(metrics.SPAWN_SECONDS, metrics.spawn_result, plan.slug if plan else "none"):
            try:
                async with ours:
                    return await self._start_steps(state, controller, time.monotonic() + budget)
            except TimeoutError as e:
                pod_key = f"{self.namespace}/{self.pod_name}"
                # The start's deadline only: ours (the steps were cancelled), or KubeSpawner's own wait
                # for the pod, which has the same start_timeout and may end first. Either way the user
                # reads why, not KubeSpawner's "pod … did not start".
                if ours.expired() or is_pod_start_deadline(e, pod_key, self.start_timeout):
                    raise StartTimedOut(
                        timeout_message(plan, self.start_timeout, await self._pod_unscheduled())
                    ) from None
                # KubeSpawner gave up on a request of its own ("Could not create pod …"): its words,
                # reported as a failure, not as the profile's timeout.
                raise ClusterTimedOut(
                    f"{e}: the cluster did not answer in time; try again in a minute."
                ) from e

    async def _start_steps(self, state: SpawnState, controller, deadline: float):
        plan = state.plan
        if state.binder_request:
            state.binder_preparing = asyncio.ensure_future(self.prepare_binder_image(*state.binder_request))
            state.binder_launch = await state.binder_preparing
        if controller is None:
            url = await super().start()  # nothing to watch beside it: in this task
        else:
            url = await self._start_or_blocked(plan, controller)
        # JupyterHub then gives the notebook http_timeout to answer, though its first start on a
        # node that just booted (or a loaded one) is part of the start: that check gets the
        # start's remaining time. (A check of our own before it cost every spawn a second round
        # of requests; a notebook that never answers now fails with JupyterHub's message.)
        self.http_timeout = max(self.http_timeout, int(deadline - time.monotonic()))
        await quota.started(self, plan)  # a GPU server's session counts from its pod running
        return url

    async def _start_or_blocked(self, plan, controller) -> str:
        """KubeSpawner's start, given up when the controller says the pod's group cannot grow."""
        began = time.time()  # a blocker from before this start judged earlier users, not this one
        with controller.arriving(plan.group, f"{self.namespace}/{self.pod_name}"):
            starting = asyncio.ensure_future(super().start())
            blocked = asyncio.ensure_future(self._growth_blocked(plan, controller, began))
            try:
                # Woken only when the controller sets a blocker (GroupStatus.until_blocked).
                await asyncio.wait({starting, blocked}, return_when=asyncio.FIRST_COMPLETED)
                if blocked.done() and not starting.done():
                    # JupyterHub shows "Spawn failed: <this>" and stops the server, removing the pod.
                    raise GrowthImpossible(blocked.result())
                return await starting
            finally:
                # Cancelled (the user cancelled, or our deadline) or given up: KubeSpawner's start
                # stops too; JupyterHub's stop then deletes the pod.
                if not starting.done():
                    starting.cancel()
                if not blocked.done():
                    blocked.cancel()

    async def _growth_blocked(self, plan, controller, began: float) -> str:
        """The message of what keeps `plan`'s group from growing, once its pod waits for it. Woken
        when the controller sets a blocker after `began`; while one stands, looked at each second
        (the pod may not exist yet, or the blocker may go)."""
        while True:
            blocker = await controller.status(plan.group).until_blocked(after=began)
            if await self._pod_unscheduled():
                return blocker.user_message
            await shared_tick(1.0)

    async def _pod_unscheduled(self) -> bool:
        # Only once the pod exists: giving up while its creation is in flight could leave it behind
        # after JupyterHub's cleanup (stop) had already run.
        pod = self._reflected_pod()
        return pod is not None and not pod["spec"].get("nodeName")

    def _reflected_pod(self) -> dict | None:
        if self.pod_reflector is None:
            return None
        return self.pod_reflector.pods.get(f"{self.namespace}/{self.pod_name}")

    def where(self) -> dict:
        """Where this server's pod is, as the pod watch last saw it: pod, node (None while
        unscheduled), node group (None for a group this hub does not label)."""
        pod = self._reflected_pod()
        if pod is None:
            return {"pod": None, "node": None, "node_group": None}
        labels = pod["metadata"].get("labels") or {}
        node_group = labels.get(NODE_GROUP_LABEL)
        return {"pod": self.pod_name, "node": pod["spec"].get("nodeName"), "node_group": node_group}

    async def progress(self):
        # The progress stream may open before start() begins (JupyterHub runs its hooks first, a
        # token exchange among them): wait for it, or a launch's build would go unreported.
        async def started_or_given_up() -> bool:
            return self.spawn_state.started or not self._spawn_pending

        await until(started_or_given_up, within=None, what="the spawn's start", cap=0.1)
        preparing = self.spawn_state.binder_preparing  # set in the step that sets `started`
        if preparing is not None:
            async for event in self.binder_progress(preparing):
                yield event
            if preparing.cancelled() or preparing.exception():
                return  # JupyterHub reports the failure itself
        if not (self.spawn_state.started and self.spawn_state.plan):
            return
        plan = self.spawn_state.plan
        story = SpawnStory(plan, shared_controller(self, self.log) if plan.group else None)

        def started_ok() -> bool:
            started = self._start_future
            return bool(started and started.done() and not started.cancelled() and not started.exception())

        async for event in merged_progress(story, super().progress(), started_ok):
            yield event

    async def stop(self, now=False):
        self.spawn_state = SpawnState()  # the next progress stream waits for the next start
        await super().stop(now=now)
        quota.stopped(self)  # its GPU session, if any, ends

    def _expand_user_properties(self, template, slug_scheme=None):
        # KubeSpawner renders every string of the pod (labels, security contexts, affinity, ...)
        # against ~20 user fields it computes per string; a string without a field is itself.
        if "{" not in template and "}" not in template:
            return template
        return super()._expand_user_properties(template, slug_scheme)

    # -- Pod Security Admission "restricted" --------------------------------------------------
    # KubeSpawner writes uid/gid into the container's securityContext only and fs_gid into the
    # pod's; the dicts below are merged over those (and win on conflicts).

    @default("cmd")
    def _default_cmd(self):
        # As Zero to JupyterHub does: start the single-user server explicitly rather than relying on
        # each image's CMD (the sandbox has no images, only commands).
        return ["jupyterhub-singleuser"]

    @default("uid")
    def _default_uid(self):
        return NB_UID

    @default("gid")
    def _default_gid(self):
        return NB_GID

    @default("fs_gid")
    def _default_fs_gid(self):
        # Volumes become writable by the notebook user's group.
        return NB_GID

    @default("container_security_context")
    def _default_container_security_context(self):
        return {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }

    @default("pod_security_context")
    def _default_pod_security_context(self):
        # Also covers init and sidecar containers, which do not get container_security_context.
        return {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}

    @default("automount_service_account_token")
    def _default_automount_service_account_token(self):
        # KubeSpawner mounts the token whenever a service account is set; users need no API access.
        return False
