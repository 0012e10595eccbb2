"""Hot reload: edits applied, broken edits refused with the last good catalog kept, ConfigMap swaps seen."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from cern_spawner.catalog import CatalogError
from cern_spawner.catalog_store import CatalogStore

pytestmark = pytest.mark.unit
DEFAULT = Path(__file__).resolve().parents[2] / "profiles" / "default.yaml"
EXTRA = """
profiles:
  - slug: shared-8g
    display_name: "Shared, 8 GB memory, 4 CPU cores"
    kind: shared
    cpu: {guarantee: 1, limit: 4}
    memory: {guarantee: 4G, limit: 8G}
    node_group: default-worker
"""
BROKEN = EXTRA.replace("node_group: default-worker", "node_group: default-workr")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def plain_dir(tmp_path):
    directory = tmp_path / "profiles"
    directory.mkdir()
    (directory / "default.yaml").write_text(DEFAULT.read_text())
    return directory


def configmap_dir(root: Path, files: dict[str, str], generation: int) -> Path:
    """Lay out (or update) a directory the way the kubelet writes a ConfigMap volume."""
    root.mkdir(exist_ok=True)
    data = root / f"..2026_11_27_00_00_0{generation}.000000000"
    data.mkdir()
    for name, text in files.items():
        (data / name).write_text(text)
    staging = root / "..data_tmp"
    staging.symlink_to(data.name)
    old = os.readlink(root / "..data") if (root / "..data").is_symlink() else None
    os.rename(staging, root / "..data")  # the atomic swap
    for name in files:
        if not (root / name).is_symlink():
            (root / name).symlink_to(f"..data/{name}")
    if old:
        for leftover in (root / old).iterdir():
            leftover.unlink()
        (root / old).rmdir()
    return root


def store_for(path: Path, clock: Clock) -> CatalogStore:
    return CatalogStore(
        [path], log=logging.getLogger("test"), min_interval=1.0, clock=clock, wall_clock=clock
    )


def test_a_valid_edit_is_applied_at_the_next_check(plain_dir):
    clock = Clock()
    store = store_for(plain_dir, clock)
    before = store.current().version
    (plain_dir / "extra.yaml").write_text(EXTRA)
    assert store.current().version == before  # checked less than min_interval ago
    clock.now += 1.0
    assert "shared-8g" in [p.slug for p in store.current().profiles]
    assert store.refusal is None


def test_a_broken_edit_is_refused_and_the_last_good_catalog_stays(plain_dir, caplog):
    clock = Clock()
    store = store_for(plain_dir, clock)
    good = store.current()
    (plain_dir / "extra.yaml").write_text(BROKEN)
    clock.now += 1.0
    with caplog.at_level(logging.ERROR):
        assert store.current() is good
    assert store.refusal is not None
    problems = [str(p) for p in store.refusal.error.problems]
    assert any("default-workr" in p and "extra.yaml" in p and "default-worker" in p for p in problems)
    assert "refused" in caplog.text
    status = store.status()
    assert status["version"] == good.version
    assert status["refused_edit"]["problems"] == problems
    # Reverting the broken file clears the refusal without reloading.
    (plain_dir / "extra.yaml").unlink()
    clock.now += 1.0
    assert store.current() is good
    assert store.refusal is None


def test_the_same_broken_content_is_reported_once(plain_dir, caplog):
    clock = Clock()
    store = store_for(plain_dir, clock)
    (plain_dir / "extra.yaml").write_text(BROKEN)
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            clock.now += 1.0
            store.current()
    assert caplog.text.count("refused") == 1


def test_configmap_symlink_swaps_are_seen(tmp_path):
    clock = Clock()
    root = configmap_dir(tmp_path / "cm", {"default.yaml": DEFAULT.read_text()}, 1)
    store = store_for(root, clock)
    assert "shared-8g" not in [p.slug for p in store.current().profiles]
    configmap_dir(root, {"default.yaml": DEFAULT.read_text() + EXTRA.replace("profiles:\n", "")}, 2)
    clock.now += 1.0
    assert "shared-8g" in [p.slug for p in store.current().profiles]


def test_a_broken_catalog_at_start_is_fatal_with_the_problems(tmp_path):
    (tmp_path / "default.yaml").write_text(DEFAULT.read_text() + BROKEN.replace("profiles:\n", ""))
    with pytest.raises(CatalogError) as error:
        store_for(tmp_path, Clock())
    assert "default-workr" in str(error.value)


GPU_PROFILE = """
profiles:
  - slug: gpu-2
    display_name: "Dedicated 2 GPUs"
    kind: dedicated
    cpu: 2
    memory: 4G
    gpus: 2
    node_group: gpu-v100
    allowed_roles: [gpu-users]
"""


@pytest.mark.parametrize(
    "half",
    [
        # Cut before allowed_roles: it parses and would open a GPU profile to everyone.
        pytest.param(GPU_PROFILE.split("    allowed_roles")[0], id="cut-that-parses"),
        pytest.param(GPU_PROFILE[: GPU_PROFILE.index("kind:") + 3], id="cut-that-breaks"),
    ],
)
def test_files_that_change_while_being_loaded_are_neither_applied_nor_refused(plain_dir, monkeypatch, half):
    import cern_spawner.catalog_store as catalog_store

    clock = Clock()
    store = store_for(plain_dir, clock)
    good = store.current()
    extra = plain_dir / "gpu.yaml"
    extra.write_text(half)
    real_load = catalog_store.load_catalog

    def load_then_finish_write(paths):
        try:
            return real_load(paths)  # reads the half-written file (or raises on it)...
        finally:
            extra.write_text(GPU_PROFILE)  # ...and the writer finishes meanwhile

    monkeypatch.setattr(catalog_store, "load_catalog", load_then_finish_write)
    clock.now += 1.0
    assert store.current() is good
    assert store.refusal is None
    monkeypatch.setattr(catalog_store, "load_catalog", real_load)
    clock.now += 1.0
    applied = {p.slug: p for p in store.current().profiles}
    assert applied["gpu-2"].allowed_roles == ("gpu-users",)
