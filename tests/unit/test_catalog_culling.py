"""The catalog's culling settings: kind defaults, profile overrides, 0/null as never, and the checks."""

from pathlib import Path

import pytest

from cern_spawner.catalog import CatalogError, load_catalog
from cern_spawner.catalog.culling import policy_for
from cern_spawner.catalog.model import DEFAULT_CULLING, CullPolicy
from tests.unit.catalog_samples import BASE, write

pytestmark = pytest.mark.unit

GPU_LINE = "    node_group: gpu-v100\n"


def with_gpu(extra: str) -> str:
    """BASE with `extra` lines added to the GPU profile (the last one)."""
    assert BASE.endswith(GPU_LINE)
    return BASE + extra


POLICIES = [
    ("built-in", BASE, {"shared-2g": DEFAULT_CULLING["shared"], "gpu-1": DEFAULT_CULLING["dedicated"]}),
    (
        "kind-defaults",
        BASE + "culling:\n  shared: {idle_timeout: 7200}\n  dedicated: {idle_timeout: 600, max_age: 3600}\n",
        {"shared-2g": CullPolicy(7200, 0), "gpu-1": CullPolicy(600, 3600)},
    ),
    (
        "profile-overrides",
        with_gpu("    idle_timeout: 300\n    max_age: 7200\n"),
        {"shared-2g": DEFAULT_CULLING["shared"], "gpu-1": CullPolicy(300, 7200)},
    ),
    (
        "zero-and-null-mean-never",
        with_gpu("    idle_timeout: 0\n    max_age: null\n"),
        {"gpu-1": CullPolicy(0, 0)},
    ),
    (
        "null-kind-default",
        BASE + "culling:\n  dedicated: {max_age: null}\n",
        {"gpu-1": CullPolicy(DEFAULT_CULLING["dedicated"].idle_timeout, 0)},
    ),
]


@pytest.mark.parametrize("text, expected", [p[1:] for p in POLICIES], ids=[p[0] for p in POLICIES])
def test_policy_for_each_profile(tmp_path, text, expected):
    catalog = load_catalog(write(tmp_path, {"a.yaml": text}))
    for slug, policy in expected.items():
        assert policy_for(catalog, catalog.profile(slug)) == policy
    assert catalog.warnings == ()


def test_gpu_profiles_are_culled_sooner_by_default():
    dedicated, shared = DEFAULT_CULLING["dedicated"], DEFAULT_CULLING["shared"]
    assert 0 < dedicated.idle_timeout < shared.idle_timeout
    assert dedicated.max_age > 0


def test_unknown_profile_gets_the_shared_defaults(tmp_path):
    catalog = load_catalog(write(tmp_path, {"a.yaml": BASE}))
    assert policy_for(catalog, None) == catalog.culling["shared"]


WARNINGS = [
    (
        "profile-max-age-below-idle",
        with_gpu("    idle_timeout: 3600\n    max_age: 600\n"),
        "a.yaml:22: profiles[1].max_age: profile 'gpu-1': max_age 600 s is shorter than idle_timeout 3600 s",
    ),
    (
        "kind-max-age-below-idle",
        BASE + "culling:\n  dedicated: {idle_timeout: 3600, max_age: 60}\n",
        "a.yaml:22: culling.dedicated.max_age: culling.dedicated: max_age 60 s is shorter than idle_timeout",
    ),
    (
        "gpu-idle-longer-than-shared",
        BASE + "culling:\n  shared: {idle_timeout: 600}\n",
        "a.yaml:22: culling.shared: dedicated (GPU) servers are kept idle up to 3600 s, shared ones",
    ),
    (
        "gpu-never-idle-culled",
        BASE + "culling:\n  dedicated: {idle_timeout: 0}\n",
        "a.yaml:22: culling.dedicated: dedicated (GPU) servers are kept idle for ever",
    ),
]


@pytest.mark.parametrize("text, start", [w[1:] for w in WARNINGS], ids=[w[0] for w in WARNINGS])
def test_suspicious_settings_load_with_a_warning(tmp_path, text, start):
    catalog = load_catalog(write(tmp_path, {"a.yaml": text}))
    assert len(catalog.warnings) == 1
    assert str(catalog.warnings[0]).removeprefix(f"{tmp_path}/").startswith(start)


REFUSED = [
    ("negative", with_gpu("    idle_timeout: -1\n"), "profiles[1].idle_timeout"),
    ("text", with_gpu("    max_age: 1h\n"), "profiles[1].max_age"),
    ("unknown-kind", BASE + "culling:\n  gpu: {idle_timeout: 60}\n", "culling.gpu"),
    ("unknown-key", BASE + "culling:\n  shared: {idle: 60}\n", "culling.shared.idle"),
]


@pytest.mark.parametrize("text, path", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused_settings(tmp_path, text, path):
    with pytest.raises(CatalogError) as caught:
        load_catalog(write(tmp_path, {"a.yaml": text}))
    assert [p.path for p in caught.value.problems] == [path]


def test_a_kind_set_in_two_files_is_refused(tmp_path):
    files = {
        "a.yaml": BASE + "culling:\n  shared: {idle_timeout: 7200}\n",
        "b.yaml": "culling:\n  shared: {idle_timeout: 3600}\n",
    }
    with pytest.raises(CatalogError) as caught:
        load_catalog(write(tmp_path, files))
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.path) == (str(tmp_path / "b.yaml"), 2, "culling.shared")
    assert problem.message == f"culling.shared is also set in {tmp_path}/a.yaml:22"


def test_shipped_catalog_states_its_culling():
    catalog = load_catalog(Path(__file__).resolve().parents[2] / "profiles" / "default.yaml")
    assert catalog.warnings == ()
    assert catalog.culling["dedicated"].idle_timeout < catalog.culling["shared"].idle_timeout


def test_validate_prints_warnings_and_still_passes(tmp_path, capsys):
    from cern_spawner.cli import main

    write(tmp_path, {"a.yaml": with_gpu("    idle_timeout: 3600\n    max_age: 600\n")})
    assert main(["profiles", "validate", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out == "OK: 2 profiles, 2 node groups from 1 file\n"
    assert err.startswith(
        f"warning: {tmp_path}/a.yaml:22: profiles[1].max_age: profile 'gpu-1': max_age 600 s"
    )
