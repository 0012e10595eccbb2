"""Rules the schema cannot express: across files, across profiles, and between a profile and its group.

- a node group is defined in one file only; slugs are unique; at most one profile is the default
  (with none, the loader makes the first one the default, as KubeSpawner would);
- CPU and memory are valid quantities, guarantee ≤ limit, and dedicated profiles have guarantee = limit;
- a profile's node group exists; GPUs only for dedicated profiles, on a group with ``gpu``, at most
  ``per_node``; and a GPU group only for profiles that ask for GPUs. Dedicated CPU-only profiles (gpus
  0, guaranteed QoS) are fine on any group without ``gpu``;
- GPU sharing: a MIG slice only on a group whose layout has that slice type, a shared GPU only on a
  time-sliced group, whole GPUs on neither; a layout's names are MIG profiles of the group's product
  (when known) and its slices fit the node's GPUs (see gpu_sharing);
- a profile's volumes have unique names, plain mount paths not inside one another, and none inside
  the home directory unless ``inside_home`` says it is meant to be.

Runs only on schema-valid documents, so every key the schema requires is present and well typed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..scaling import standby as standby_rules
from .gpu_sharing import layout_problem, mig_table
from .model import Problem
from .quantities import CPU_HINT, MEMORY_HINT, parse_cpu, parse_memory
from .schema import did_you_mean
from .source import Document, Parts


@dataclass(frozen=True)
class Entry:
    """A node group or profile as written, with where it was written."""

    doc: Document
    parts: Parts
    data: Mapping[str, Any]

    def problem(self, keys: tuple[str, ...], message: str, hint: str = "") -> Problem:
        return self.doc.problem(self.parts + keys, message, hint)

    def where(self, keys: tuple[str, ...] = ()) -> str:
        return f"{self.doc.file}:{self.doc.line_of(self.parts + keys)}"


def merge(docs: Iterable[Document]) -> tuple[dict[str, Entry], list[Entry], list[Problem]]:
    """Node groups by name (each defined once across all files) and profiles in file order."""
    groups: dict[str, Entry] = {}
    profiles: list[Entry] = []
    problems: list[Problem] = []
    for doc in docs:
        for name, data in (doc.data.get("node_groups") or {}).items():
            entry = Entry(doc, ("node_groups", name), data)
            if name in groups:
                problems.append(
                    entry.problem(
                        (),
                        f"node group {name!r} is also defined in {groups[name].where()}",
                        "define each node group in one file only",
                    )
                )
            else:
                groups[name] = entry
        profiles += [
            Entry(doc, ("profiles", i), data) for i, data in enumerate(doc.data.get("profiles") or ())
        ]
    return groups, profiles, problems


def check(groups: Mapping[str, Entry], profiles: Iterable[Entry]) -> list[Problem]:
    problems = [p for group in groups.values() for p in _group(group)]
    first_with_slug: dict[str, Entry] = {}
    first_default: Entry | None = None
    for entry in profiles:
        slug = entry.data["slug"]
        if slug in first_with_slug:
            where = first_with_slug[slug].where(("slug",))
            problems.append(
                entry.problem(("slug",), f"duplicate slug {slug!r}, also at {where}", "slugs must be unique")
            )
        first_with_slug.setdefault(slug, entry)
        if entry.data.get("default"):
            if first_default is not None:
                problems.append(
                    entry.problem(
                        ("default",),
                        f"{slug!r} is a second default: {first_default.data['slug']!r} "
                        f"at {first_default.where(('default',))} already is",
                        "set default: true on one profile only",
                    )
                )
            first_default = first_default or entry
        problems += _resources(entry)
        problems += _placement(entry, groups)
        problems += _volumes(entry)
    return problems


# Where the chart mounts each user's home claim (singleuser.storage.homeMountPath's default).
HOME = "/home/jovyan"


def _volumes(entry: Entry) -> Iterator[Problem]:
    """Names unique, mount paths normalised and not nested in one another, and not over the home
    directory unless the volume says it is meant to be."""
    seen_names: dict[str, int] = {}
    seen_paths: list[tuple[str, int]] = []
    for i, volume in enumerate(entry.data.get("volumes") or ()):
        keys = ("volumes", i)
        name, path = volume["name"], volume["mount_path"]
        if name in seen_names:
            yield entry.problem(
                (*keys, "name"),
                f"duplicate volume name {name!r}, also volume {seen_names[name] + 1} of this profile",
                "give each volume of a profile its own name",
            )
        seen_names.setdefault(name, i)
        if path != "/" and (path.endswith("/") or "//" in path or {".", ".."} & set(path.split("/"))):
            yield entry.problem(
                (*keys, "mount_path"),
                f"mount path {path!r} is not a plain absolute path",
                "write it without '.', '..', '//' or a trailing '/', e.g. /eos",
            )
            continue
        if _inside(path, HOME) and not volume.get("inside_home", False):
            yield entry.problem(
                (*keys, "mount_path"),
                f"mount path {path!r} is inside the home directory {HOME}, where each user's files are",
                "mount it elsewhere (e.g. /eos), or set inside_home: true if that is intended",
            )
        for other, j in seen_paths:
            if _inside(path, other) or _inside(other, path):
                yield entry.problem(
                    (*keys, "mount_path"),
                    f"mount path {path!r} overlaps {other!r} of volume {j + 1} of this profile",
                    "mount volumes at paths that are not inside one another",
                )
        seen_paths.append((path, i))


def _inside(path: str, parent: str) -> bool:
    """``path`` is ``parent`` or below it."""
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _group(group: Entry) -> Iterator[Problem]:
    scaling = group.data.get("scaling") or {}
    if scaling.get("min_nodes", 0) > scaling.get("max_nodes", float("inf")):
        yield group.problem(
            ("scaling", "min_nodes"),
            f"min_nodes {scaling['min_nodes']} is more than max_nodes {scaling['max_nodes']}",
        )
    yield from _backend(group)
    yield from _standby(group)
    yield from _gpu_sharing(group)


# The scaling keys each backend needs, and those that belong to the other one.
BACKEND_KEYS = {
    "magnum": (("cluster",), ("namespace", "machine_deployment", "capacity")),
    "clusterapi": (("namespace", "machine_deployment"), ("cluster",)),
}


def _backend(group: Entry) -> Iterator[Problem]:
    scaling = group.data.get("scaling")
    if not scaling:
        return
    backend = scaling["backend"]
    needed, foreign = BACKEND_KEYS[backend]
    for key in needed:
        if key not in scaling:
            yield group.problem(("scaling",), f"backend {backend} needs scaling.{key}")
    for key in foreign:
        if key in scaling:
            yield group.problem(("scaling", key), f"scaling.{key} does not apply to backend {backend}")


def _gpu_sharing(group: Entry) -> Iterator[Problem]:
    gpu = group.data.get("gpu") or {}
    mig = gpu.get("mig")
    if mig and "time_slicing" in gpu:
        yield group.problem(
            ("gpu", "time_slicing"),
            "a node group's GPUs are either MIG slices or time-sliced, not both",
            "keep mig: or time_slicing:, or make two node groups",
        )
    if not mig:
        return
    product = gpu.get("product")
    if product is None:
        yield group.problem(
            ("gpu", "mig"),
            "a MIG node group needs gpu.product, to check its slices against the GPU model",
            "set product: to the nodes' nvidia.com/gpu.product label, e.g. NVIDIA-A100-SXM4-80GB",
        )
        return
    table = mig_table(product)
    slices = mig["slices"]
    unknown = [name for name in slices if table and name not in table.sizes]
    for name in unknown:
        yield group.problem(
            ("gpu", "mig", "slices", name),
            f"{name!r} is not a MIG profile of the {table.model} ({product})",
            f"its profiles: {', '.join(table.sizes)}",
        )
    if unknown:
        return
    why = layout_problem(slices, gpu["per_node"], table)
    if why:
        layout = ", ".join(f"{n} × {name}" for name, n in slices.items())
        yield group.problem(
            ("gpu", "mig", "slices"),
            f"a node's MIG layout ({layout}) cannot be made: {why}",
            "lower the counts, or raise per_node if the nodes have more GPUs",
        )


def _standby(group: Entry) -> Iterator[Problem]:
    """A standby's zone, days and times parse; a GPU group; no more GPUs than max_nodes hold."""
    standby = (group.data.get("scaling") or {}).get("standby")
    if not standby:
        return
    keys = ("scaling", "standby")
    gpu = group.data.get("gpu")
    if not gpu:
        yield group.problem(keys, "standby GPUs on a node group without gpu", "remove standby, or add gpu")
        return
    try:
        standby_rules.parse_zone(standby.get("timezone", "UTC"))
    except ValueError as error:
        yield group.problem((*keys, "timezone"), str(error), "use an IANA name such as Europe/Zurich")
    for i, window in enumerate(standby["windows"]):
        try:
            standby_rules.parse_window(window)
        except ValueError as error:
            yield group.problem((*keys, "windows", i), str(error), standby_rules.DAY_HINT)
    max_nodes = (group.data.get("scaling") or {}).get("max_nodes")
    if max_nodes is not None and standby["gpus"] > max_nodes * gpu["per_node"]:
        yield group.problem(
            (*keys, "gpus"),
            f"{standby['gpus']} standby GPUs do not fit in max_nodes {max_nodes} × {gpu['per_node']} GPUs",
            "lower gpus or raise max_nodes",
        )


def _resources(entry: Entry) -> Iterator[Problem]:
    quantities: tuple[tuple[str, Callable[[object], float], str], ...] = (
        ("cpu", parse_cpu, CPU_HINT),
        ("memory", parse_memory, MEMORY_HINT),
    )
    for key, parse, hint in quantities:
        spec = entry.data[key]
        if not isinstance(spec, Mapping):
            try:
                parse(spec)
            except ValueError as error:
                yield entry.problem((key,), str(error), hint)
            continue
        parsed = {}
        for side in ("guarantee", "limit"):
            try:
                parsed[side] = parse(spec[side])
            except ValueError as error:
                yield entry.problem((key, side), str(error), hint)
        if len(parsed) < 2:
            continue
        if parsed["guarantee"] > parsed["limit"]:
            yield entry.problem(
                (key, "guarantee"),
                f"guarantee {spec['guarantee']} is more than limit {spec['limit']}",
                "a pod cannot be guaranteed more than it may use",
            )
        elif entry.data["kind"] == "dedicated" and parsed["guarantee"] != parsed["limit"]:
            yield entry.problem(
                (key,),
                "dedicated profiles have requests = limits",
                f"write one value ({key}: {spec['limit']}), or use kind: shared",
            )


def _placement(entry: Entry, groups: Mapping[str, Entry]) -> Iterator[Problem]:
    slug, name, gpus = entry.data["slug"], entry.data["node_group"], entry.data.get("gpus", 0)
    group = groups.get(name)
    if group is None:
        known = f"node groups: {', '.join(groups)}" if groups else "no node groups are defined"
        yield entry.problem(
            ("node_group",), f"unknown node group {name!r}", did_you_mean(name, groups) or known
        )
        return
    gpu = group.data.get("gpu")
    asked = [key for key in ("gpus", "mig_slice", "shared_gpu") if entry.data.get(key)]
    if len(asked) > 1:
        yield entry.problem(
            (asked[1],),
            f"{slug} asks for {' and '.join(asked)}: a profile holds one kind of GPU",
            f"keep one of {', '.join(asked)}",
        )
        return
    if asked and asked[0] != "gpus":
        yield from _shared_placement(entry, groups, asked[0])
        return
    if gpus and entry.data["kind"] != "dedicated":
        yield entry.problem(("gpus",), "shared profiles cannot hold GPUs", "use kind: dedicated")
    sharing = _sharing(gpu)
    if gpus and sharing == "mig":
        yield entry.problem(
            ("gpus",),
            f"{slug} asks for whole GPUs but the GPUs of {name!r} are MIG slices",
            f"ask for one slice instead: mig_slice: one of {', '.join(gpu['mig']['slices'])}",
        )
    elif gpus and sharing == "time-sliced":
        yield entry.problem(
            ("gpus",),
            f"{slug} asks for whole GPUs but the GPUs of {name!r} are time-sliced",
            "ask for a share instead: shared_gpu: true (and no gpus:)",
        )
    elif gpus and gpu is None:
        yield entry.problem(
            ("gpus",),
            f"{slug} asks for {_gpus(gpus)} but node group {name!r} has none",
            f"pick a node group with gpu: ({_names_with_gpus(groups)}), or give {name!r} a gpu: entry",
        )
    elif gpus and gpus > gpu["per_node"]:
        yield entry.problem(
            ("gpus",),
            f"{slug} asks for {_gpus(gpus)} but a {name} node has {gpu['per_node']}",
            f"ask for at most {gpu['per_node']}: a pod runs on one node",
        )
    elif not gpus and gpu is not None:
        # Keeps GPU nodes free for GPU pods, and lets empty GPU groups shrink.
        yield entry.problem(
            ("node_group",),
            f"{slug} asks for no GPUs but {name!r} is a GPU node group",
            (
                f"set mig_slice: (one of {', '.join(gpu['mig']['slices'])})"
                if sharing == "mig"
                else "set shared_gpu: true"
                if sharing == "time-sliced"
                else "set gpus: 1 or more"
            )
            + ", or pick a node group without gpu:",
        )


def _sharing(gpu: Mapping[str, Any] | None) -> str:
    if not gpu:
        return "none"
    return "mig" if gpu.get("mig") else "time-sliced" if gpu.get("time_slicing") else "whole"


def _shared_placement(entry: Entry, groups: Mapping[str, Entry], key: str) -> Iterator[Problem]:
    """A profile asking for a MIG slice or a shared GPU: its group must offer that."""
    slug, name = entry.data["slug"], entry.data["node_group"]
    gpu = groups[name].data.get("gpu")
    if key == "mig_slice":
        wanted = entry.data["mig_slice"]
        slices = (gpu or {}).get("mig", {}).get("slices", {})
        if not slices:
            yield entry.problem(
                (key,),
                f"{slug} asks for a {wanted} MIG slice but node group {name!r} has no MIG slices",
                f"pick a node group with gpu.mig: ({_names_with(groups, 'mig')}), or give {name!r} one",
            )
        elif wanted not in slices:
            yield entry.problem(
                (key,),
                f"{slug} asks for a {wanted} MIG slice but a {name} node has only {', '.join(slices)}",
                f"ask for one of those, or add {wanted} to the group's gpu.mig.slices",
            )
    elif _sharing(gpu) != "time-sliced":
        yield entry.problem(
            (key,),
            f"{slug} asks for a shared GPU but node group {name!r} does not time-slice its GPUs",
            f"pick a node group with gpu.time_slicing: ({_names_with(groups, 'time_slicing')})",
        )


def _names_with(groups: Mapping[str, Entry], key: str) -> str:
    names = [name for name, group in groups.items() if (group.data.get("gpu") or {}).get(key)]
    return ", ".join(names) or "none defined"


def _gpus(count: int) -> str:
    return f"{count} GPU" if count == 1 else f"{count} GPUs"


def _names_with_gpus(groups: Mapping[str, Entry]) -> str:
    return ", ".join(name for name, group in groups.items() if group.data.get("gpu")) or "none defined"
