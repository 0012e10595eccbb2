"""cern-spawner: a JupyterHub spawner for Kubernetes clusters of the CERN cloud (OpenStack Magnum)."""

from .spawner import CERNSpawner

__version__ = "0.1.0.dev0"

__all__ = ["CERNSpawner", "__version__"]
