"""A small valid catalog for the catalog tests, and helpers to write variants of it."""

import pytest

from cern_spawner.catalog import CatalogError, load_catalog

# A valid catalog; the problem tests rely on its line numbers.
BASE = """\
node_groups:
  default-worker: {zones: [a, b]}
  gpu-v100:
    gpu: {per_node: 4}
    taint: {key: nvidia.com/gpu, value: present, effect: NoSchedule}
profiles:
  - slug: shared-2g
    display_name: Shared
    kind: shared
    cpu: {guarantee: 0.2, limit: 1}
    memory: {guarantee: 1G, limit: 2G}
    node_group: default-worker
    default: true
  - slug: gpu-1
    display_name: GPU
    kind: dedicated
    cpu: 2
    memory: 4G
    gpus: 1
    node_group: gpu-v100
"""


def edited(old, new):
    assert old in BASE, old
    return BASE.replace(old, new)


def write(directory, files):
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def problems_of(directory, files):
    with pytest.raises(CatalogError) as raised:
        load_catalog([write(directory, files)])
    return raised.value.problems
