"""CPU and memory quantities as admins write them, parsed the way JupyterHub will apply them.

Memory follows JupyterHub's ``ByteSpecification`` (what KubeSpawner's ``mem_*`` traits use): K, M, G, T
are powers of 1024, so "1G" is one GiB, not the 10^9 bytes Kubernetes would read. Ki, Mi, Gi, Ti mean
the same and are accepted because admins copy them from Kubernetes manifests; JupyterHub itself refuses
them, so :func:`memory_for_kubespawner` turns them into bytes.
"""

from __future__ import annotations

import re

_BINARY = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_MEMORY = re.compile(r"(?P<number>\d+(?:\.\d+)?)(?P<unit>[KMGT])(?P<i>i?)|(?P<bytes>\d+)")
_CPU = re.compile(r"(?P<number>\d+(?:\.\d+)?)(?P<milli>m?)")

MEMORY_HINT = (
    "write whole bytes or a number with K, M, G or T (powers of 1024, as JupyterHub counts: 1G = 1 GiB), "
    "e.g. 512M, 2G or 1.5Gi"
)
CPU_HINT = "write cores as a number (0.5, 2) or millicores as a string (500m)"


def parse_memory(value: object) -> int:
    """Bytes in ``value``; ValueError if it is not a positive memory quantity."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a memory quantity")
    if isinstance(value, int):
        amount = value
    elif isinstance(value, str) and (match := _MEMORY.fullmatch(value)):
        if match["bytes"] is not None:
            amount = int(match["bytes"])
        else:
            amount = int(float(match["number"]) * _BINARY[match["unit"]])
    else:
        raise ValueError(f"{value!r} is not a memory quantity")
    if amount <= 0:
        raise ValueError(f"{value!r} is not more than zero")
    return amount


def parse_cpu(value: object) -> float:
    """Cores in ``value``; ValueError if it is not a positive CPU quantity."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a CPU quantity")
    if isinstance(value, int | float):
        cores = float(value)
    elif isinstance(value, str) and (match := _CPU.fullmatch(value)):
        cores = float(match["number"]) / (1000 if match["milli"] else 1)
    else:
        raise ValueError(f"{value!r} is not a CPU quantity")
    if cores <= 0:
        raise ValueError(f"{value!r} is not more than zero")
    return cores


def memory_for_kubespawner(text: str) -> str | int:
    """A value JupyterHub's ByteSpecification accepts with the same meaning: the text, or bytes."""
    match = _MEMORY.fullmatch(text)
    if match and match["unit"] and not match["i"]:
        return text
    return parse_memory(text)
