"""cern-spawner: a JupyterHub spawner for Kubernetes clusters of the CERN cloud (OpenStack Magnum)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0.dev0"

__all__ = ["CERNSpawner", "__version__", "configure_hub"]

if TYPE_CHECKING:
    from .configure import configure_hub
    from .spawner import CERNSpawner

# Imported at first use, not with the package: `cern-spawner profiles validate` imports the package
# too, and the spawner brings JupyterHub, KubeSpawner and the Kubernetes client (seconds).
_LAZY = {"CERNSpawner": ".spawner", "configure_hub": ".configure"}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value
