"""The catalog's scaling.standby: schema-checked, then its zone, days, times and size."""

from __future__ import annotations

import pytest

from cern_spawner.catalog import load_catalog
from cern_spawner.scaling.hub import scaled_groups
from tests.unit.catalog_samples import edited, problems_of, write

pytestmark = pytest.mark.unit


def with_standby(standby: str, max_nodes: int = 2) -> str:
    return edited(
        "    gpu: {per_node: 4}\n",
        "    gpu: {per_node: 4}\n"
        f"    scaling:\n      backend: magnum\n      cluster: c\n      max_nodes: {max_nodes}\n"
        f"      standby: {standby}\n",
    )


OFFICE = '{gpus: 4, timezone: Europe/Zurich, windows: [{days: mon-fri, from: "08:00", to: "18:00"}]}'


def test_a_standby_reaches_the_scaling_controller(tmp_path):
    catalog = load_catalog([write(tmp_path, {"a.yaml": with_standby(OFFICE)})])
    (group,) = scaled_groups(catalog)
    assert (group.standby.gpus, group.standby.timezone) == (4, "Europe/Zurich")
    assert [(sorted(w.days), w.start, w.end) for w in group.standby.windows] == [([0, 1, 2, 3, 4], 480, 1080)]


@pytest.mark.parametrize(
    ("standby", "path", "message"),
    [
        pytest.param(
            OFFICE.replace("Europe/Zurich", "Europe/Geneva"),
            "node_groups.gpu-v100.scaling.standby.timezone",
            "unknown time zone 'Europe/Geneva'",
            id="zone",
        ),
        pytest.param(
            OFFICE.replace("mon-fri", "weekdays"),
            "node_groups.gpu-v100.scaling.standby.windows[0]",
            "unknown days 'weekdays'",
            id="days",
        ),
        pytest.param(
            OFFICE.replace('"18:00"', '"07:00"'),
            "node_groups.gpu-v100.scaling.standby.windows[0]",
            "window ends at '07:00', not after it starts at '08:00' (split a window across midnight in two)",
            id="ends-before-it-starts",
        ),
        pytest.param(
            OFFICE.replace("gpus: 4", "gpus: 9"),
            "node_groups.gpu-v100.scaling.standby.gpus",
            "9 standby GPUs do not fit in max_nodes 2 × 4 GPUs",
            id="more-than-the-ceiling",
        ),
        pytest.param(
            OFFICE.replace("gpus: 4", "gpu: 4"),
            "node_groups.gpu-v100.scaling.standby",
            "missing key 'gpus'",
            id="schema",
        ),
    ],
)
def test_bad_standby(tmp_path, standby, path, message):
    problems = problems_of(tmp_path, {"a.yaml": with_standby(standby)})
    assert [(p.path, p.message) for p in problems if p.path.startswith(path)][:1] == [(path, message)]
    assert problems[0].line == 9  # the standby's line
