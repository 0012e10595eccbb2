"""The profile catalog: admin-edited YAML, validated with located problems, mapped to KubeSpawner."""

from .access import allowed_profiles
from .loader import load_catalog
from .model import GPU, Catalog, CatalogError, NodeGroup, Problem, Profile, Volume
from .schema import SCHEMA_PATH
from .to_kubespawner import to_profile_list

__all__ = [
    "GPU",
    "SCHEMA_PATH",
    "Catalog",
    "CatalogError",
    "NodeGroup",
    "Problem",
    "Profile",
    "Volume",
    "allowed_profiles",
    "load_catalog",
    "to_profile_list",
]
