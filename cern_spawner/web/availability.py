"""Can a user start a profile now, in a sentence for the profile picker. Pure.

Decided from what the scaling controller already holds (its last round's capacity, cloud state and
blocker), never from the cluster: the picker polls this every few seconds for every open page.
GPUs other spawns are already waiting for are not free for a newcomer, so they are subtracted.
A profile asking for a MIG slice or a shared (time-sliced) GPU is told about that resource alone:
"3 of 7 1g.10gb slices free", "Shared GPU: 2 of 8 free".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from ..catalog.access import allowed_profiles
from ..catalog.model import GPU, Catalog, Profile
from ..scaling.errors import CeilingReached, QuotaExceeded
from ..scaling.state import GroupStatus, ScaledGroup
from .progress_words import minutes


@dataclass(frozen=True)
class Availability:
    state: str  # available | free | starting | grow | wait | unknown | blocked
    text: str  # one short line on the card
    reason: str = ""  # why it is blocked, in the words of the scaling controller
    disabled: bool = False
    free_gpus: int | None = None
    total_gpus: int | None = None

    def as_json(self) -> dict:
        return asdict(self)


def _gpus(n: int) -> str:
    return "1 GPU" if n == 1 else f"{n} GPUs"


def _what(profile: Profile) -> str:
    """What the profile waits for, as in "No … free now"."""
    return (
        f"{profile.mig_slice} slice" if profile.mig_slice else "shared GPU" if profile.shared_gpu else "GPU"
    )


def _free_text(profile: Profile, spare: int, total: int) -> str:
    if profile.mig_slice:
        return f"{spare} of {total} {profile.mig_slice} {'slice' if total == 1 else 'slices'} free"
    if profile.shared_gpu:
        return f"Shared GPU: {spare} of {total} free"
    return f"{spare} of {_gpus(total)} free"


def _blocked_text(blocker: Exception) -> str:
    if isinstance(blocker, CeilingReached):
        return "Unavailable: GPU limit reached"
    if isinstance(blocker, QuotaExceeded):
        return "Unavailable: the cloud's GPU quota is used up"
    return "Unavailable: no GPU node can be added now"


def availability(
    profile: Profile,
    status: GroupStatus | None,
    scaled: ScaledGroup | None,
    expected_boot: float | None = None,
    gpu: GPU | None = None,
) -> Availability:
    """The picker's verdict for `profile`.

    `status` is the controller's view of the profile's node group (None: the controller does not
    watch it), `scaled` the group's growth settings (None: the hub does not grow it),
    `expected_boot` the group's measured boot time in seconds (None: none measured yet), `gpu` the
    group's GPUs (None: whole GPUs, counted in the group's totals).
    """
    need = profile.gpu_units
    if not need:
        return Availability("available", "Available")
    capacity = status.capacity if status else None
    if capacity is None:
        # No controller, or before its first round: say so rather than guess.
        return Availability("unknown", "GPU availability not known yet")
    requested = gpu.requested(profile) if gpu else None
    # A MIG slice or a share is served by its own resource only, not by the group's totals.
    own = capacity.resource(requested[0]) if requested and len(capacity.resources) > 1 else None
    if own is not None:
        per_node, total, booting = own.per_node, own.allocatable, own.booting
        spare_now = own.free - own.pending
    else:
        per_node = capacity.gpus_per_node or (scaled.gpus_per_node if scaled else 0)
        total, booting = capacity.allocatable_gpus, capacity.booting_gpus
        spare_now = capacity.free_gpus - capacity.pending_gpus
    # Nodes the cloud has accepted but that have not joined yet will bring their GPUs too.
    cloud_nodes = status.cloud.node_count if status.cloud else capacity.nodes
    planned_nodes = max(cloud_nodes, capacity.nodes, (status.requested or (0, 0))[1])
    unjoined = max(planned_nodes - capacity.nodes, 0)
    spare_soon = spare_now + booting + unjoined * per_node
    counts = {"free_gpus": max(spare_now, 0), "total_gpus": total}
    what = _what(profile)

    if spare_now >= need:
        # Inside the group's standby window the free GPUs were booted ahead for exactly this.
        ready = "Ready now: " if status.standby_gpus else ""
        return Availability("free", f"{ready}{_free_text(profile, spare_now, total)}", **counts)
    if spare_soon >= need:
        took = f"about {minutes(expected_boot)}" if expected_boot else "several minutes"
        return Availability(
            "starting", f"No {what} free now: a GPU node is already starting ({took})", **counts
        )
    if status.blocker is not None:
        reason = getattr(status.blocker, "user_message", str(status.blocker))
        return Availability("blocked", _blocked_text(status.blocker), reason, True, **counts)
    if scaled is None:
        return Availability("wait", f"No {what} free — your server will wait until one is released", **counts)
    room = max(scaled.max_nodes - planned_nodes, 0) * per_node
    if spare_soon + room >= need:
        if expected_boot:
            text = f"No {what} free now: a new node takes about {minutes(expected_boot)}"
        else:
            text = f"No {what} free now: a new GPU node will be started (several minutes)"
        return Availability("grow", text, **counts)
    # Users know their profile, not the node group behind it.
    reason = (
        f"All GPUs for “{profile.display_name}” are in use or promised, and no more GPU nodes may be "
        "added. Try again later, or ask the service admins for more GPU nodes."
    )
    return Availability("blocked", "Unavailable: GPU limit reached", reason, True, **counts)


def report(
    catalog: Catalog,
    roles: Iterable[str],
    statuses: Mapping[str, GroupStatus],
    scaled: Iterable[ScaledGroup],
    expected_boot: Mapping[str, float | None] | None = None,
) -> dict:
    """The JSON body of the availability endpoint: one entry per profile `roles` may use."""
    by_name = {group.name: group for group in scaled}
    boots = expected_boot or {}
    profiles = {}
    for profile in allowed_profiles(catalog, roles):
        group = profile.node_group
        gpu = catalog.node_groups[group].gpu if group in catalog.node_groups else None
        verdict = availability(profile, statuses.get(group), by_name.get(group), boots.get(group), gpu)
        profiles[profile.slug] = verdict.as_json()
    return {"catalog_version": catalog.version, "profiles": profiles}
