"""The OpenStack simulator enforces Magnum's documented node-group rules."""

from __future__ import annotations

import pytest

from sandbox.openstack.rules import Refused, apply_patch, check_microversion, check_resize

pytestmark = pytest.mark.unit


def group(**overrides):
    values = {
        "name": "gpu-v100",
        "node_count": 1,
        "min_node_count": 0,
        "max_node_count": 4,
        "node_labels": None,
    }
    values["status"] = "UPDATE_COMPLETE"
    values.update(overrides)
    return values


@pytest.mark.parametrize(
    ("header", "status"),
    [
        pytest.param(None, 406, id="missing"),
        pytest.param("container-infra 1.9", 406, id="too-old"),
        pytest.param("compute 2.1", 406, id="other-service"),
        pytest.param("container-infra 1.10", None, id="1.10"),
        pytest.param("container-infra 1.12", None, id="newer"),
        pytest.param("container-infra latest", None, id="latest"),
    ],
)
def test_node_group_calls_need_microversion_1_10(header, status):
    if status is None:
        check_microversion(header)
    else:
        with pytest.raises(Refused) as refused:
            check_microversion(header)
        assert refused.value.status == status


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        pytest.param(
            [{"op": "replace", "path": "/max_node_count", "value": 2}], {"max_node_count": 2}, id="max"
        ),
        pytest.param(
            [{"op": "replace", "path": "/min_node_count", "value": 1}], {"min_node_count": 1}, id="min"
        ),
        pytest.param(
            [{"op": "add", "path": "/node_labels", "value": {"a": "b"}}],
            {"node_labels": {"a": "b"}},
            id="add",
        ),
    ],
)
def test_allowed_patches(patch, expected):
    updated = apply_patch(group(), patch)
    for field, value in expected.items():
        assert updated[field] == value


@pytest.mark.parametrize(
    ("patch", "words"),
    [
        pytest.param(
            [{"op": "replace", "path": "/node_count", "value": 3}], "internal attribute", id="node-count"
        ),
        pytest.param(
            [{"op": "replace", "path": "/flavor_id", "value": "x"}], "internal attribute", id="flavor"
        ),
        pytest.param(
            [{"op": "add", "path": "/max_node_count", "value": 5}], "not allowed", id="add-on-a-value"
        ),
        pytest.param(
            [{"op": "replace", "path": "/node_labels", "value": {}}], "use 'add'", id="replace-null"
        ),
        pytest.param(
            [{"op": "replace", "path": "/min_node_count", "value": 2}], "less or equal", id="min-above-count"
        ),
        pytest.param(
            [{"op": "replace", "path": "/max_node_count", "value": 0}], "greater or equal", id="max-below"
        ),
        pytest.param({"op": "replace"}, "JSON patch", id="not-a-list"),
    ],
)
def test_refused_patches_are_400(patch, words):
    with pytest.raises(Refused) as refused:
        apply_patch(group(), patch)
    assert refused.value.status == 400
    assert words in refused.value.detail


@pytest.mark.parametrize(
    ("state", "count", "status"),
    [
        pytest.param(group(), 5, 409, id="above-max"),
        pytest.param(group(min_node_count=1), 0, 409, id="below-min"),
        pytest.param(group(status="UPDATE_IN_PROGRESS"), 2, 409, id="busy"),
        pytest.param(group(), -1, 400, id="negative"),
        pytest.param(group(), "2", 400, id="not-an-integer"),
    ],
)
def test_refused_resizes(state, count, status):
    with pytest.raises(Refused) as refused:
        check_resize(state, count)
    assert refused.value.status == status


def test_resize_within_bounds_is_accepted():
    check_resize(group(), 4)
    check_resize(group(max_node_count=None), 40)
