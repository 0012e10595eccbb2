"""``load_catalog``: profile YAML files → a validated :class:`Catalog`, or every problem found.

Checks run in two stages: YAML and schema problems of all files first; only when there are none do the
cross-file and cross-profile rules run (they need well-typed input, and would otherwise repeat the
same mistake as noise).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .culling import culling_defaults, culling_warnings, seconds
from .model import (
    DEFAULT_GPU_RESOURCE,
    DEFAULT_NODE_GROUP_LABEL,
    GPU,
    Catalog,
    CatalogError,
    ImageChoice,
    NodeGroup,
    Problem,
    Profile,
    Volume,
)
from .quantities import parse_cpu
from .quota_rules import quota_section, quota_warnings
from .schema import describe, schema_problems
from .semantics import Entry, check, merge
from .source import Document, parse


def load_catalog(paths: Iterable[str | Path] | str | Path) -> Catalog:
    """Read the ``*.yaml`` files of each directory in ``paths`` (and each file named directly).

    Files are read in sorted order of their paths whatever the order of ``paths``, so the catalog and
    its ``version`` do not depend on it. An empty file contributes nothing. If no profile says
    ``default: true``, the first one is the default. Raises CatalogError listing every problem.
    """
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    files, problems = _files([Path(p) for p in paths])
    digest = hashlib.sha256()
    docs: list[Document] = []
    for file in files:
        try:
            raw = file.read_bytes()
        except OSError as error:  # e.g. removed between listing and reading
            problems.append(Problem(str(file), None, "", f"cannot read: {error.strerror}"))
            continue
        digest.update(raw)
        doc, found = _document(str(file), raw)
        problems += found
        if doc is not None:
            docs.append(doc)
    if problems:
        raise CatalogError(problems)

    groups, profiles, problems = merge(docs)
    problems += check(groups, profiles)
    culling, culling_kinds, culling_problems = culling_defaults(docs)
    problems += culling_problems
    quotas, quotas_doc, quota_problems = quota_section(docs)
    problems += quota_problems
    if not profiles and not problems:
        problems.append(Problem(", ".join(map(str, paths)), None, "profiles", "the catalog has no profiles"))
    if problems:
        order = {str(file): index for index, file in enumerate(files)}
        raise CatalogError(sorted(problems, key=lambda p: (order.get(p.file, -1), p.line or 0)))

    has_default = any(entry.data.get("default") for entry in profiles)
    return Catalog(
        node_groups=MappingProxyType({name: _node_group(name, entry.data) for name, entry in groups.items()}),
        profiles=tuple(
            _profile(entry, default=not has_default and i == 0) for i, entry in enumerate(profiles)
        ),
        sources=tuple(map(str, files)),
        version=digest.hexdigest(),
        culling=culling,
        warnings=culling_warnings(profiles, culling, culling_kinds)
        + tuple(quota_warnings(quotas, quotas_doc, profiles)),
        quotas=quotas,
    )


def _files(paths: list[Path]) -> tuple[list[Path], list[Problem]]:
    files: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        if path.is_dir():
            # Dot files are editor leftovers (.#default.yaml) or a ConfigMap's internals.
            found = [p for p in path.glob("*.yaml") if p.is_file() and not p.name.startswith(".")]
            if not found:
                problems.append(Problem(str(path), None, "", "no *.yaml files in this directory"))
            files += found
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem(str(path), None, "", "no such file or directory"))
    return sorted(set(files), key=str), problems


def _document(file: str, raw: bytes) -> tuple[Document | None, list[Problem]]:
    """The file's document if it passes the schema and has content, and its problems."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, [Problem(file, None, "", f"not UTF-8 text (byte {error.start})")]
    doc, problems = parse(file, text)
    if doc is None or doc.data is None:
        return None, problems
    if not isinstance(doc.data, dict):
        found = f"must be a mapping with node_groups and/or profiles, not {describe(doc.data)}"
        return None, problems + [doc.problem((), found)]
    return doc, sorted(problems + schema_problems(doc), key=lambda p: p.line or 0)


def _node_group(name: str, data: Mapping[str, Any]) -> NodeGroup:
    gpu = data.get("gpu")
    return NodeGroup(
        name=name,
        label=data.get("label", DEFAULT_NODE_GROUP_LABEL),
        zones=tuple(data.get("zones", ())),
        spread_zones=data.get("spread_zones", True),
        placement=data.get("placement"),
        gpu=GPU(
            resource=gpu.get("resource", DEFAULT_GPU_RESOURCE),
            per_node=gpu["per_node"],
            product=gpu.get("product"),
            mig_slices=MappingProxyType(dict((gpu.get("mig") or {}).get("slices") or {})),
            mig_config=(gpu.get("mig") or {}).get("config"),
            replicas=(gpu.get("time_slicing") or {}).get("replicas", 1),
            rename_by_default=(gpu.get("time_slicing") or {}).get("rename_by_default", False),
        )
        if gpu
        else None,
        taint=MappingProxyType(dict(data["taint"])) if "taint" in data else None,
        scaling=MappingProxyType(dict(data["scaling"])) if "scaling" in data else None,
    )


def _profile(entry: Entry, *, default: bool) -> Profile:
    data = entry.data
    cpu_guarantee, cpu_limit = _sides(data["cpu"])
    mem_guarantee, mem_limit = _sides(data["memory"])
    return Profile(
        slug=data["slug"],
        display_name=data["display_name"],
        description=data.get("description", ""),
        kind=data["kind"],
        cpu_guarantee=parse_cpu(cpu_guarantee),
        cpu_limit=parse_cpu(cpu_limit),
        # As written: "2G" must reach KubeSpawner as "2G" (JupyterHub's units), not as Kubernetes bytes.
        mem_guarantee=str(mem_guarantee),
        mem_limit=str(mem_limit),
        gpus=data.get("gpus", 0),
        mig_slice=data.get("mig_slice"),
        shared_gpu=data.get("shared_gpu", False),
        node_group=data["node_group"],
        image=data.get("image"),
        image_choices=tuple(
            ImageChoice(name, choice["display_name"], choice["image"])
            for name, choice in data.get("image_choices", {}).items()
        ),
        env=MappingProxyType({name: str(value) for name, value in data.get("env", {}).items()}),
        allowed_roles=tuple(data.get("allowed_roles", ())),
        default=data.get("default", False) or default,
        start_timeout=data.get("start_timeout"),
        idle_timeout=seconds(data, "idle_timeout", None),
        max_age=seconds(data, "max_age", None),
        volumes=tuple(_volume(v) for v in data.get("volumes", ())),
    )


def _volume(data: Mapping[str, Any]) -> Volume:
    return Volume(
        name=data["name"],
        mount_path=data["mount_path"],
        source=MappingProxyType(copy.deepcopy(dict(data["source"]))),
        read_only=data.get("read_only", False),
        sub_path=data.get("sub_path"),
        mount_propagation=data.get("mount_propagation"),
    )


def _sides(spec: Any) -> tuple[Any, Any]:
    """(guarantee, limit) of a ``{guarantee, limit}`` mapping or of one value meaning both."""
    return (spec["guarantee"], spec["limit"]) if isinstance(spec, Mapping) else (spec, spec)
