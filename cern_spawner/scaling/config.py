"""Hub-level settings of GPU growth: `c.GPUScaling.*`.

One scaling controller serves the whole hub, so its settings belong to the hub, not to each
spawner. Until 0.1.0 (in development) four of them were CERNSpawner traits; those names still
work (read from the `c.CERNSpawner` section) and log a deprecation warning, as oauthenticator does
for its renamed traits.
"""

from __future__ import annotations

from traitlets import Callable, Float, Unicode
from traitlets.config import LoggingConfigurable

# Old CERNSpawner trait name -> (GPUScaling trait, cern-spawner version that deprecated it).
DEPRECATED_SPAWNER_ALIASES = {
    "openstack_cloud": ("openstack_cloud", "0.1.0"),
    "openstack_clouds_yaml": ("openstack_clouds_yaml", "0.1.0"),
    "scaling_interval": ("interval", "0.1.0"),
    "scaling_grace_period": ("grace_period", "0.1.0"),
}


class GPUScaling(LoggingConfigurable):
    """Growing GPU node groups (Magnum or Cluster API) while users wait, and shrinking them after."""

    openstack_cloud = Unicode(
        "",
        config=True,
        help="""
        Name of the cloud in clouds.yaml through which GPU node groups are grown (application
        credentials recommended). Empty (the default) turns on-demand growth off: GPU spawns then
        wait for a free GPU until their start timeout.
        """,
    )
    openstack_clouds_yaml = Unicode(
        "",
        config=True,
        help="Path of the clouds.yaml to read; empty (default): openstacksdk's usual places.",
    )
    cluster_api_kubeconfig = Unicode(
        "",
        config=True,
        help="""
        Path of the kubeconfig of the Cluster API management cluster whose MachineDeployments are
        the catalog's node groups with `scaling: {backend: clusterapi}` (mounted from a Secret; needs
        get/patch on machinedeployments and get/list/patch on machines there). "in-cluster": the
        hub's own service account (the hub runs in the management cluster). Empty (the default):
        Cluster API node groups are not grown.
        """,
    )
    cluster_api_version = Unicode(
        "v1beta1",
        config=True,
        help="API version of the cluster.x-k8s.io resources (default v1beta1, served by Cluster API 1.x).",
    )
    interval = Float(
        2.0,
        config=True,
        help="""
        Seconds between the controller's rounds while users wait or a change is under way
        (default 2 s). Formerly CERNSpawner.scaling_interval.
        """,
    )
    grace_period = Float(
        600.0,
        config=True,
        help="""
        Seconds without GPU demand before a grown node group is returned to its baseline (default
        600 s, so a user restarting a server finds the node still there). Only empty nodes are
        removed. Formerly CERNSpawner.scaling_grace_period.
        """,
    )
    call_timeout = Float(
        20.0,
        config=True,
        help="""
        Seconds one OpenStack call may take before it counts as failed (default 20 s). Applied both
        as openstacksdk's api_timeout and as a deadline around the call, so a hung cloud never
        stalls the controller; each node group is reconciled on its own.
        """,
    )
    retry_timeout = Float(
        30.0,
        config=True,
        help="""
        Seconds of transient cloud failures (5xx, time-outs, refused connections), retried with
        backoff, after which every spawn waiting on that node group fails with "The cloud is not
        answering" (default 30 s). Retries go on in the background for later spawns.
        """,
    )
    join_deadline = Float(
        1200.0,
        config=True,
        help="""
        Seconds a VM the cloud counts may take to join Kubernetes (default 1200 s = 20 min). Past
        it the VM stops counting as on its way: the group grows again if its ceiling allows, and
        the event is logged and counted in cern_spawner_nodes_lost_total.
        """,
    )
    burst_quiet = Float(
        1.0,
        config=True,
        help="""
        Seconds without a new GPU start (or new waiting GPU pod) before a node group is grown
        (default 1 s), so that one resize covers a burst of starts still arriving: the cloud takes
        no second resize of a group until it has carried out the first (minutes), and a start
        arriving just after it would wait for a second boot. A begun start whose pod is still being
        created also holds the growth. Never held longer than GPUScaling.burst_window. 0: grow at
        once.
        """,
    )
    burst_window = Float(
        10.0,
        config=True,
        help="""
        Seconds after the first user of a burst began waiting by which the group is grown even if
        starts keep arriving (default 10 s; see GPUScaling.burst_quiet).
        """,
    )
    idle_refresh = Float(
        30.0,
        config=True,
        help="""
        Seconds between reads of a node group from the cloud while nothing waits for it (default
        30 s; each read costs the hub ~2 ms of CPU). A user who starts waiting makes the group be
        read at once, and then every GPUScaling.interval while users wait or a change is under
        way (spaced up to 8 s apart while the cloud's answer stays the same); rounds are otherwise
        driven by the cluster watch.
        """,
    )
    memory_path = Unicode(
        "cern-spawner-scaling.json",
        config=True,
        help="""
        File where the controller keeps what must survive a hub restart: measured node boot times
        (users are told their median), max sizes raised by growth, groups it grew. Relative paths
        are from the hub's working directory, like jupyterhub.sqlite. Empty: keep nothing.
        """,
    )

    wall_clock = Callable(
        None,
        allow_none=True,
        config=True,
        help="""
        A function of no arguments returning the current time as a timezone-aware datetime, read
        when deciding whether a node group's standby window (catalog: scaling.standby) is open.
        None (the default): the system clock. Set only by tests and simulations that move time.
        """,
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._apply_deprecated_spawner_config()

    @property
    def enabled(self) -> bool:
        """Some backend is configured: Magnum (an OpenStack cloud) or Cluster API (a kubeconfig)."""
        return bool(self.openstack_cloud or self.cluster_api_kubeconfig)

    def _apply_deprecated_spawner_config(self) -> None:
        # _has_section: reading c.CERNSpawner on a Config would create the section.
        old = self.config.CERNSpawner if self.config._has_section("CERNSpawner") else {}
        new = self.config.GPUScaling if self.config._has_section("GPUScaling") else {}
        for old_name, (new_name, version) in DEPRECATED_SPAWNER_ALIASES.items():
            if old_name not in old:
                continue
            message = (
                f"CERNSpawner.{old_name} is deprecated in cern-spawner {version}, "
                f"use GPUScaling.{new_name} instead"
            )
            if new_name in new:
                if new[new_name] != old[old_name]:  # the same value under both names is no conflict
                    self.log.warning("%s (ignored: GPUScaling.%s is set)", message, new_name)
                continue
            self.log.warning(message)
            setattr(self, new_name, old[old_name])
