"""The catalog's `quotas:` section: schema-checked, set in one file, read-only, and warned about
when a role looks mistaken."""

from __future__ import annotations

import pytest

from cern_spawner.catalog import load_catalog
from cern_spawner.quota.policy import Limits, policy_of
from tests.unit.catalog_samples import BASE, problems_of, write

pytestmark = pytest.mark.unit

ROLE_GATED = BASE + "    allowed_roles: [gpu-users, ml-team]\n"
QUOTAS = """\
quotas:
  window: 3d
  default: {gpus: 1, gpu_hours: 10}
  roles:
    gpu-users: {gpus: 2, gpu_hours: 40}
    ml-team: {gpu_hours: 200}
"""


def test_the_section_loads_read_only_and_becomes_a_policy(tmp_path):
    catalog = load_catalog(write(tmp_path, {"a.yaml": ROLE_GATED + QUOTAS}))
    assert catalog.warnings == ()
    with pytest.raises(TypeError):
        catalog.quotas["window"] = "1d"  # the served catalog cannot be changed by its readers
    policy = policy_of(catalog)
    assert policy.window == 3 * 86400
    assert policy.default == Limits(gpus=1, gpu_hours=10.0)
    assert policy.roles["ml-team"] == Limits(gpus=None, gpu_hours=200.0)


def test_without_the_section_nobody_is_limited(tmp_path):
    assert policy_of(load_catalog(write(tmp_path, {"a.yaml": BASE}))) is None


SCHEMA = {
    # name: (section, problem path, words in the message)
    "unknown-key": ("quotas:\n  windw: 7d\n", "quotas.windw", "unknown key 'windw'"),
    "unknown-limit": ("quotas:\n  default: {gpu: 1}\n", "quotas.default.gpu", "unknown key 'gpu'"),
    "window-without-unit": ("quotas:\n  window: '7'\n", "quotas.window", "not a valid name here"),
    "negative-hours": ("quotas:\n  default: {gpu_hours: -1}\n", "quotas.default.gpu_hours", "at least 0"),
    "fractional-gpus": ("quotas:\n  default: {gpus: 1.5}\n", "quotas.default.gpus", "a whole number"),
    "empty-limits": ("quotas:\n  roles: {ml-team: {}}\n", "quotas.roles.ml-team", "must not be empty"),
}


@pytest.mark.parametrize(("section", "path", "words"), SCHEMA.values(), ids=SCHEMA.keys())
def test_schema_problems_point_at_the_key(tmp_path, section, path, words):
    problems = problems_of(tmp_path, {"a.yaml": BASE + section})
    assert [(p.path, words in p.message) for p in problems] == [(path, True)], problems
    assert problems[0].line == BASE.count("\n") + section.count("\n")


def test_the_section_in_two_files_is_refused_with_both_places(tmp_path):
    problems = problems_of(tmp_path, {"a.yaml": BASE + QUOTAS, "b.yaml": "quotas:\n  window: 1d\n"})
    assert len(problems) == 1
    assert problems[0].file.endswith("b.yaml") and problems[0].line == 1
    assert f"a.yaml:{BASE.count(chr(10)) + 1}" in problems[0].message


def test_mistaken_roles_warn_without_refusing_the_catalog(tmp_path):
    section = (
        "quotas:\n  default: {gpus: 2, gpu_hours: 10}\n  roles:\n    gpu-user: {gpus: 1, gpu_hours: 40}\n"
    )
    catalog = load_catalog(write(tmp_path, {"a.yaml": ROLE_GATED + section}))
    found = [(w.path, w.line, w.message, w.hint) for w in catalog.warnings]
    role_line = ROLE_GATED.count("\n") + 4
    assert found == [
        (
            "quotas.roles.gpu-user",
            role_line,
            "role 'gpu-user' is not in any profile's allowed_roles",
            "did you mean 'gpu-users'? Fine if it is a single sign-on role used only for quotas.",
        ),
        (
            "quotas.roles.gpu-user.gpus",
            role_line,
            "role 'gpu-user' gets 1 GPU at once, less than default's 2 GPUs at once",
            "default applies only to users holding no listed role: its users would get more than this role's",
        ),
    ]
