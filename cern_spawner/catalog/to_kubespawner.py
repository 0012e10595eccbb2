"""The pure mapping from catalog profiles to KubeSpawner ``profile_list`` entries."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from .gpu_sharing import MIG_CONFIG_LABEL
from .model import DEFAULT_GPU_RESOURCE, Catalog, NodeGroup, Profile, Volume
from .quantities import memory_for_kubespawner

# Labels put on every user pod, so that operators (and the spread constraint) can select by them.
PROFILE_LABEL = "cern-spawner/profile"
NODE_GROUP_LABEL = "cern-spawner/node-group"
# Read by the idle culler: per-profile idle timeouts, in seconds.
IDLE_TIMEOUT_ANNOTATION = "cern-spawner/idle-timeout"
ZONE_TOPOLOGY_KEY = "topology.kubernetes.io/zone"
HOSTNAME_TOPOLOGY_KEY = "kubernetes.io/hostname"
# The pod_affinity_preferred key of the pack preference: a dict entry, so KubeSpawner merges it
# into preferred affinities the hub's config sets as a dict (a list there is replaced).
PACK_AFFINITY = "cern-spawner-pack"
# A profile's volumes are named profile-<name> in the pod: never the same as the hub's own (home, tokens).
VOLUME_PREFIX = "profile-"

_WHEN_UNSATISFIABLE = ("ScheduleAnyway", "DoNotSchedule")
_TOLERATION_OPERATORS = ("Exists", "Equal")
_ATOMS = frozenset((str, int, float, bool, type(None)))


class ProfileEntry(dict):
    """A ``profile_list`` entry: a dict whose deep copy is a plain structural copy.

    KubeSpawner deep-copies the whole offered list at every start and form render, and so does the
    spawner before handing a list out. The entries hold only dicts, lists and scalars, and nothing
    in one is shared, so ``copy.deepcopy``'s bookkeeping (a memo entry and a dispatch per value,
    about half its time) buys nothing. Values of any other type are still deep-copied its way.
    """

    __slots__ = ()

    def __deepcopy__(self, memo: dict) -> ProfileEntry:
        return ProfileEntry(_copied(self, memo))


class ProfileList(list):
    """A list of ProfileEntry, deep-copied in one go (no per-entry dispatch through ``copy``)."""

    __slots__ = ()

    def __deepcopy__(self, memo: dict) -> ProfileList:
        return ProfileList(
            ProfileEntry(_copied(entry, memo)) if type(entry) is ProfileEntry else copy.deepcopy(entry, memo)
            for entry in self
        )


def _copied(value: Any, memo: dict) -> Any:
    # Scalars are tested inline, not by a call each: they are most of an entry.
    kind = type(value)
    if kind is dict or kind is ProfileEntry:
        return {k: v if type(v) in _ATOMS else _copied(v, memo) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _ATOMS else _copied(v, memo) for v in value]
    if kind in _ATOMS:
        return value
    return copy.deepcopy(value, memo)


def to_profile_list(
    catalog: Catalog,
    profiles: Iterable[Profile] | None = None,
    *,
    spread_when_unsatisfiable: str = "ScheduleAnyway",
    gpu_toleration_operator: str = "Exists",
) -> ProfileList:
    """KubeSpawner ``profile_list`` entries for ``profiles`` (default: all of the catalog's).

    New dicts (ProfileEntry, in a ProfileList) on every call, sharing nothing with the catalog or
    earlier results. Exactly one entry is the default: the default profile if it is among
    ``profiles``, else the first (as KubeSpawner would).
    """
    if spread_when_unsatisfiable not in _WHEN_UNSATISFIABLE:
        raise ValueError(f"spread_when_unsatisfiable must be one of {_WHEN_UNSATISFIABLE}")
    if gpu_toleration_operator not in _TOLERATION_OPERATORS:
        raise ValueError(f"gpu_toleration_operator must be one of {_TOLERATION_OPERATORS}")
    profiles = catalog.profiles if profiles is None else tuple(profiles)
    default = next((p.slug for p in profiles if p.default), profiles[0].slug if profiles else None)
    entries = ProfileList()
    for profile in profiles:
        group = catalog.node_groups.get(profile.node_group)
        if group is None:
            raise ValueError(
                f"profile {profile.slug!r}: node group {profile.node_group!r} is not in the catalog"
            )
        entry = ProfileEntry(
            {
                "display_name": profile.display_name,
                "slug": profile.slug,
                "description": profile.description,
                "default": profile.slug == default,
                "kubespawner_override": _override(
                    profile, group, spread_when_unsatisfiable, gpu_toleration_operator
                ),
            }
        )
        if profile.image_choices:
            entry["profile_options"] = {"image": _image_option(profile)}
        entries.append(entry)
    return entries


def _override(profile: Profile, group: NodeGroup, when_unsatisfiable: str, operator: str) -> dict[str, Any]:
    override: dict[str, Any] = {
        "cpu_guarantee": profile.cpu_guarantee,
        "cpu_limit": profile.cpu_limit,
        "mem_guarantee": memory_for_kubespawner(profile.mem_guarantee),
        "mem_limit": memory_for_kubespawner(profile.mem_limit),
        "node_selector": {group.label: group.name},
        "extra_labels": {PROFILE_LABEL: profile.slug, NODE_GROUP_LABEL: group.name},
    }
    requested = group.gpu.requested(profile) if group.gpu else None
    if requested is None and profile.gpus:  # the loader never lets this happen; kept as it was
        requested = DEFAULT_GPU_RESOURCE, profile.gpus
    if requested:
        # Kubernetes requires requests = limits for extended resources: GPUs cannot be overcommitted.
        # A MIG slice is nvidia.com/mig-<profile>, a time-sliced share nvidia.com/gpu[.shared].
        resource, count = requested
        override["extra_resource_guarantees"] = {resource: str(count)}
        override["extra_resource_limits"] = {resource: str(count)}
        if profile.mig_slice and group.gpu.mig_config:
            # Never onto a node the MIG manager laid out otherwise (or is still re-partitioning).
            override["node_selector"][MIG_CONFIG_LABEL] = group.gpu.mig_config
    if group.taint:
        # The node selector already pins the pod to this group: without tolerating its taint the pod
        # could never be scheduled. (The loader only lets GPU profiles onto GPU groups.)
        override["tolerations"] = [_toleration(group.taint, operator)]
    if profile.kind == "shared" and group.spread_zones and len(group.zones) != 1:
        # Soft by default: spreading shared pods over zones must never leave one pending.
        override["extra_pod_config"] = {
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": ZONE_TOPOLOGY_KEY,
                    "whenUnsatisfiable": when_unsatisfiable,
                    "labelSelector": {"matchLabels": {NODE_GROUP_LABEL: group.name}},
                }
            ]
        }
    if group.packs:
        # The default scheduler scores least-allocated nodes first, spreading notebooks so that every
        # node stays part-used and the safe shrink (which only returns empty nodes) never frees one.
        # A preference for nodes already running this group's pods fills a node before the next.
        override["pod_affinity_preferred"] = {PACK_AFFINITY: pack_affinity(group.name)}
    if profile.image:
        override["image"] = profile.image
    if profile.env:
        override["environment"] = dict(profile.env)
    if profile.start_timeout is not None:
        override["start_timeout"] = profile.start_timeout
    if profile.idle_timeout is not None:
        override["extra_annotations"] = {IDLE_TIMEOUT_ANNOTATION: str(profile.idle_timeout)}
    if profile.volumes:
        # Dicts by name: KubeSpawner merges them into the hub's volumes/volume_mounts (configured as
        # dicts too), where lists would replace the home directory's claim.
        override["volumes"] = {VOLUME_PREFIX + v.name: _volume(v) for v in profile.volumes}
        override["volume_mounts"] = {VOLUME_PREFIX + v.name: _volume_mount(v) for v in profile.volumes}
    return override


def pack_affinity(group_name: str) -> dict[str, Any]:
    """A WeightedPodAffinityTerm: prefer a node running a pod of node group ``group_name``."""
    return {
        "weight": 100,
        "podAffinityTerm": {
            "labelSelector": {"matchLabels": {NODE_GROUP_LABEL: group_name}},
            "topologyKey": HOSTNAME_TOPOLOGY_KEY,
        },
    }


def _volume(volume: Volume) -> dict[str, Any]:
    (kind, spec), *_ = volume.source.items()
    if kind == "pvc":
        source = {"persistentVolumeClaim": {"claimName": spec["claim_name"], "readOnly": volume.read_only}}
    elif kind == "csi":
        csi: dict[str, Any] = {"driver": spec["driver"], "readOnly": volume.read_only}
        if spec.get("volume_attributes"):
            csi["volumeAttributes"] = dict(spec["volume_attributes"])
        source = {"csi": csi}
    elif kind == "host_path":
        source = {"hostPath": {"path": spec["path"], "type": spec.get("type", "Directory")}}
    else:  # the schema allows no other
        raise ValueError(f"volume {volume.name!r}: unknown source {kind!r}")
    return {"name": VOLUME_PREFIX + volume.name, **source}


def _volume_mount(volume: Volume) -> dict[str, Any]:
    mount: dict[str, Any] = {
        "name": VOLUME_PREFIX + volume.name,
        "mountPath": volume.mount_path,
        "readOnly": volume.read_only,
    }
    if volume.sub_path:
        mount["subPath"] = volume.sub_path
    if volume.mount_propagation:
        mount["mountPropagation"] = volume.mount_propagation
    return mount


def _toleration(taint: Any, operator: str) -> dict[str, str]:
    toleration = {"key": taint["key"], "operator": operator}
    if operator == "Equal":
        toleration["value"] = taint.get("value", "")
    toleration["effect"] = taint["effect"]
    return toleration


def _image_option(profile: Profile) -> dict[str, Any]:
    # KubeSpawner's profile_options: the user's pick arrives as user_options["image"] = choice name.
    return {
        "display_name": "Image",
        "choices": {
            choice.name: {
                "display_name": choice.display_name,
                "default": index == 0,
                "kubespawner_override": {"image": choice.image},
            }
            for index, choice in enumerate(profile.image_choices)
        },
    }
