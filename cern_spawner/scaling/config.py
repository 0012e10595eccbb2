"""Hub-level settings of GPU growth that are not per spawn: `c.GPUScaling.*`."""

from __future__ import annotations

from traitlets import Float, Unicode
from traitlets.config import Configurable


class GPUScaling(Configurable):
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
    idle_refresh = Float(
        30.0,
        config=True,
        help="""
        Seconds between reads of a node group from the cloud while nothing waits for it (default
        30 s; each read costs the hub ~2 ms of CPU). A user who starts waiting makes the group be
        read at once, and then every CERNSpawner.scaling_interval while users wait or a change is
        under way; rounds are otherwise driven by the cluster watch.
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
