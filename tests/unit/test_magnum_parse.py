"""Reading Magnum's node-group JSON without openstacksdk's Resource classes (scaling/magnum.py,
`group_state`): what each field becomes, and what is refused as the cloud's API failing."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import pytest
import requests

from cern_spawner.scaling.errors import TemporaryError
from cern_spawner.scaling.magnum import GroupState, MagnumGroups, group_state

# Magnum's detailed node-group view (NodeGroup.convert, expand=True), trimmed to what varies here.
DETAIL = {
    "uuid": "9f3c",
    "name": "gpu-v100",
    "cluster_id": "c1",
    "role": "worker",
    "node_count": 2,
    "min_node_count": 0,
    "max_node_count": 4,
    "status": "UPDATE_COMPLETE",
    "status_reason": "Stack UPDATE completed successfully",
    "labels": {"auto_scaling_enabled": "false"},
    "is_default": False,
}
STATE = GroupState("gpu-v100", 2, 0, 4, "UPDATE_COMPLETE", "Stack UPDATE completed successfully", False)

PARSED = {
    "detailed-view": (DETAIL, STATE),
    "no-maximum": ({**DETAIL, "max_node_count": None}, replace(STATE, max_nodes=None)),
    "counts-as-strings": (
        {**DETAIL, "node_count": "3", "min_node_count": "1"},
        replace(STATE, node_count=3, min_nodes=1),
    ),
    "missing-fields": (
        {"name": "gpu-v100"},
        GroupState("gpu-v100", 0, 0, None, "UNKNOWN", "", False),
    ),
    "null-status-and-labels": (
        {**DETAIL, "status": None, "status_reason": None, "labels": None},
        replace(STATE, status="UNKNOWN", status_reason=""),
    ),
    "autoscaler-on-bool": (
        {**DETAIL, "labels": {"auto_scaling_enabled": True}},
        replace(STATE, autoscaled=True),
    ),
    "autoscaler-on-string": (
        {**DETAIL, "labels": {"auto_scaling_enabled": "True"}},
        replace(STATE, autoscaled=True),
    ),
}


@pytest.mark.parametrize("body, expected", PARSED.values(), ids=PARSED.keys())
def test_group_state_reads_magnums_detailed_view(body, expected):
    assert group_state(body) == expected


REFUSED = {
    "a-list": [DETAIL],
    "no-name": {**DETAIL, "name": None},
    "count-not-a-number": {**DETAIL, "node_count": "two"},
    "count-a-float": {**DETAIL, "node_count": 1.5},
    "count-a-bool": {**DETAIL, "max_node_count": True},
    "labels-a-list": {**DETAIL, "labels": ["auto_scaling_enabled"]},
}


@pytest.mark.parametrize("body", REFUSED.values(), ids=REFUSED.keys())
def test_group_state_refuses_what_is_no_node_group(body):
    with pytest.raises(ValueError):
        group_state(body)


def answer(content: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code, response._content = 200, content
    response.url = "https://magnum.example.org/v1/clusters/c1/nodegroups/gpu-v100"
    return response


class Proxy:
    def __init__(self, response):
        self.response = response

    def get(self, url, **kwargs):
        return self.response


STATES = {
    "json": (json.dumps(DETAIL).encode(), STATE),
    "not-json": (b"<html>gateway</html>", None),
    "not-a-group": (json.dumps({"errors": []}).encode(), None),
}


@pytest.mark.parametrize("content, expected", STATES.values(), ids=STATES.keys())
def test_state_reads_the_answer_or_says_the_cloud_is_failing(content, expected):
    groups = MagnumGroups(SimpleNamespace(container_infrastructure_management=Proxy(answer(content))), "c1")
    if expected is not None:
        assert groups.state("gpu-v100") == expected
    else:
        with pytest.raises(TemporaryError, match="unexpected"):
            groups.state("gpu-v100")
