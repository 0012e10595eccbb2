"""Partitioned (MIG) and time-sliced GPUs: the resource names the NVIDIA device plugin advertises,
the MIG profiles each GPU product offers, and whether a node's MIG layout fits its GPUs. Pure.

Sources (the catalog follows what they document):
- MIG "mixed" strategy: every slice type is its own extended resource, ``nvidia.com/mig-<profile>``
  (e.g. ``nvidia.com/mig-1g.10gb``), counted per node; MIG-enabled GPUs are no longer advertised
  as ``nvidia.com/gpu``. GPU operator, "GPU Operator with MIG":
  https://docs.nvidia.com/datacenter/cloud-native/gpu-operator/latest/gpu-operator-mig.html
- MIG profile names and sizes per product (compute slices out of 7, memory slices out of 8): MIG
  user guide, "Supported MIG Profiles":
  https://docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-mig-profiles.html
- Time-slicing: the device plugin advertises each GPU ``replicas`` times, as ``nvidia.com/gpu``, or
  as ``nvidia.com/gpu.shared`` when ``renameByDefault`` is set. GPU operator, "Time-Slicing GPUs in
  Kubernetes": https://docs.nvidia.com/datacenter/cloud-native/gpu-operator/latest/gpu-sharing.html
  and https://github.com/NVIDIA/k8s-device-plugin#shared-access-to-gpus
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# The node label MIG manager reads to pick a layout (a name from its mig-parted configuration).
MIG_CONFIG_LABEL = "nvidia.com/mig.config"
# What renameByDefault appends to a time-sliced resource's name.
SHARED_SUFFIX = ".shared"
# A GPU has 7 compute slices and 8 memory slices (A30: 4 and 4): (compute, memory) per profile.
Sizes = Mapping[str, tuple[int, int]]

_A100_40GB: Sizes = {
    "1g.5gb": (1, 1),
    "1g.10gb": (1, 2),
    "2g.10gb": (2, 2),
    "3g.20gb": (3, 4),
    "4g.20gb": (4, 4),
    "7g.40gb": (7, 8),
}
# A100-80GB and H100-80GB share the names (the user guide: "names change according to the memory").
_80GB: Sizes = {
    "1g.10gb": (1, 1),
    "1g.20gb": (1, 2),
    "2g.20gb": (2, 2),
    "3g.40gb": (3, 4),
    "4g.40gb": (4, 4),
    "7g.80gb": (7, 8),
}
_A30: Sizes = {"1g.6gb": (1, 1), "2g.12gb": (2, 2), "4g.24gb": (4, 4)}


class MigTable:
    """The MIG profiles of one GPU model and the slices one GPU has."""

    def __init__(self, model: str, sizes: Sizes, compute: int = 7, memory: int = 8):
        self.model, self.sizes, self.compute, self.memory = model, sizes, compute, memory


# Matched against the nvidia.com/gpu.product label value as GPU feature discovery writes it
# (NVIDIA-A100-SXM4-40GB, NVIDIA-A100-80GB-PCIe, NVIDIA-H100-80GB-HBM3, ...); first match wins.
_PRODUCTS: tuple[tuple[re.Pattern, MigTable], ...] = (
    (re.compile(r"A100.*80GB", re.I), MigTable("A100-80GB", _80GB)),
    (re.compile(r"A100", re.I), MigTable("A100-40GB", _A100_40GB)),
    (re.compile(r"H100(?!.*(94|96)GB)(?!.*NVL)", re.I), MigTable("H100-80GB", _80GB)),
    (re.compile(r"A30\b", re.I), MigTable("A30-24GB", _A30, compute=4, memory=4)),
)


def mig_table(product: str | None) -> MigTable | None:
    """The MIG profiles of `product` (a gpu.product label), None when we do not know them."""
    for pattern, table in _PRODUCTS:
        if product and pattern.search(product):
            return table
    return None


def compute_slices(profile: str) -> int:
    """The compute slices of a profile name ("3g.40gb" → 3); the schema checked its shape."""
    return int(profile.split("g.", 1)[0])


def mig_resource(gpu_resource: str, profile: str) -> str:
    """The mixed strategy's resource for a slice type: nvidia.com/gpu + 1g.10gb → nvidia.com/mig-1g.10gb."""
    domain = gpu_resource.split("/", 1)[0] if "/" in gpu_resource else "nvidia.com"
    return f"{domain}/mig-{profile}"


def shared_resource(gpu_resource: str, rename_by_default: bool) -> str:
    return gpu_resource + SHARED_SUFFIX if rename_by_default else gpu_resource


def layout_problem(slices: Mapping[str, int], per_node: int, table: MigTable | None) -> str | None:
    """Why a node's MIG layout (slices per type, over its `per_node` GPUs) cannot be made, or None.

    Packs the slices onto the GPUs, largest first, each GPU holding at most its compute and memory
    slices. Counting is what the catalog can check: MIG's placement rules may still refuse a layout
    that fits by count (MIG manager would then report the node's mig.config.state as failed).
    """
    compute_per_gpu = table.compute if table else 7
    memory_per_gpu = table.memory if table else 8
    sizes = []
    for profile, count in slices.items():
        compute = compute_slices(profile)
        memory = table.sizes[profile][1] if table and profile in table.sizes else compute
        sizes += [(compute, memory)] * count
    gpus = [[compute_per_gpu, memory_per_gpu] for _ in range(per_node)]
    for compute, memory in sorted(sizes, reverse=True):
        fitting = [g for g in gpus if g[0] >= compute and g[1] >= memory]
        if not fitting:
            used = sum(c for c, _ in sizes)
            return (
                f"the slices need {used} compute slices but {per_node} GPU(s) of "
                f"{compute_per_gpu} each cannot hold them"
                if used > compute_per_gpu * per_node
                else f"the slices do not fit on {per_node} GPU(s) of {compute_per_gpu} compute and "
                f"{memory_per_gpu} memory slices each"
            )
        best = min(fitting, key=lambda g: (g[0], g[1]))
        best[0] -= compute
        best[1] -= memory
    return None
