"""The OpenStack simulator enforces Magnum's documented node-group rules."""

from __future__ import annotations

import pytest

from sandbox.openstack.rules import (
    Refused,
    apply_patch,
    check_microversion,
    check_resize,
    cluster_status,
    requested_version,
    resize_allowed,
    victims,
)

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
    ("header", "words"),
    [
        pytest.param(None, "Version 1.1 was requested but the requested API", id="missing-means-1.1"),
        pytest.param("container-infra 1.9", "Version 1.9 was requested", id="too-old"),
        pytest.param("compute 2.1", "Invalid service type", id="other-service"),
        pytest.param("container-infra one", "Invalid value", id="malformed"),
        pytest.param("container-infra 1.99", "minor version is not supported", id="above-max"),
        pytest.param("container-infra 2.10", "Mutually exclusive versions", id="other-major"),
        pytest.param("container-infra 1.10", None, id="1.10"),
        pytest.param("container-infra 1.14", None, id="max"),
        pytest.param("container-infrastructure-management 1.12", None, id="long-service-name"),
        pytest.param("container-infra latest", None, id="latest"),
    ],
)
def test_node_group_calls_need_microversion_1_10(header, words):
    if words is None:
        check_microversion(header)
    else:
        with pytest.raises(Refused) as refused:
            check_microversion(header)
        assert refused.value.status == 406
        assert words in refused.value.detail


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(None, (1, 1), id="missing"),
        pytest.param("container-infra latest", (1, 14), id="latest"),
        pytest.param("container-infra 1.5", (1, 5), id="old-but-supported"),
    ],
)
def test_requested_version(header, expected):
    assert requested_version(header) == expected


@pytest.mark.parametrize(
    "header",
    [pytest.param("container-infra 1.99", id="above-max"), pytest.param("container-infra 2.10", id="major")],
)
def test_out_of_range_versions_name_min_and_max(header):
    with pytest.raises(Refused) as refused:
        requested_version(header)
    assert refused.value.extra["min_version"] == "1.1"
    assert refused.value.extra["max_version"] == "1.14"
    assert "[container-infrastructure-management 1.1, container-infrastructure-management 1.14]" in (
        refused.value.detail
    )


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
    ("state", "count", "words"),
    [
        pytest.param(group(), 5, "outside the allowed range", id="above-max"),
        pytest.param(group(min_node_count=1), 0, "outside the allowed range", id="below-min"),
        pytest.param(group(), -1, "node_count", id="negative"),
        pytest.param(group(), "2", "node_count", id="not-an-integer"),
    ],
)
def test_refused_resizes_are_400(state, count, words):
    with pytest.raises(Refused) as refused:
        check_resize(state, count)
    assert refused.value.status == 400
    assert words in refused.value.detail


@pytest.mark.parametrize(
    ("state", "count"),
    [
        pytest.param(group(), 4, id="max"),
        pytest.param(group(max_node_count=None), 40, id="no-max"),
        pytest.param(group(max_node_count=0), 40, id="max-0-is-no-bound"),
        pytest.param(group(status="UPDATE_IN_PROGRESS"), 2, id="busy-is-the-conductor's-business"),
    ],
)
def test_resizes_the_api_accepts(state, count):
    check_resize(state, count)


@pytest.mark.parametrize(
    ("status", "refused"),
    [
        pytest.param("UPDATE_COMPLETE", False, id="complete"),
        pytest.param("UPDATE_IN_PROGRESS", False, id="in-progress"),
        pytest.param("UPDATE_FAILED", False, id="failed"),
        pytest.param("CREATE_IN_PROGRESS", True, id="creating"),
        pytest.param("DELETE_IN_PROGRESS", True, id="deleting"),
    ],
)
def test_the_conductor_resizes_clusters_in_these_states(status, refused):
    reason = resize_allowed(status)
    assert (reason is not None) == refused
    if refused:
        assert reason == f'Resizing a cluster when status is "{status}" is not supported.'


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        pytest.param(["CREATE_COMPLETE", "CREATE_COMPLETE"], "CREATE_COMPLETE", id="untouched"),
        pytest.param(["CREATE_COMPLETE", "UPDATE_IN_PROGRESS"], "UPDATE_IN_PROGRESS", id="one-updating"),
        pytest.param(["UPDATE_FAILED", "UPDATE_IN_PROGRESS"], "UPDATE_IN_PROGRESS", id="progress-first"),
        pytest.param(["UPDATE_FAILED", "UPDATE_COMPLETE"], "UPDATE_FAILED", id="failed-next"),
        pytest.param(["CREATE_COMPLETE", "UPDATE_COMPLETE"], "UPDATE_COMPLETE", id="updated"),
    ],
)
def test_cluster_status_aggregates_its_groups(groups, expected):
    assert cluster_status(groups) == expected


def members(count):
    return [{"name": f"n-{i}", "position": i, "server_id": f"uuid-{i}"} for i in range(count)]


@pytest.mark.parametrize(
    ("remove", "target", "doomed", "ignored"),
    [
        pytest.param([], 2, ["n-3", "n-2"], [], id="heat-picks-highest-index"),
        pytest.param(["uuid-0"], 3, ["n-0"], [], id="server-uuid"),
        pytest.param(["1"], 3, ["n-1"], [], id="resource-index"),
        pytest.param(["uuid-0"], 2, ["n-0", "n-3"], [], id="fewer-named-than-the-decrease"),
        pytest.param(["n-0"], 3, ["n-3"], ["n-0"], id="node-name-ignored"),
        pytest.param(["nope"], 4, [], ["nope"], id="unknown-ignored-no-shrink"),
        pytest.param(["uuid-1"], 4, ["n-1"], [], id="named-goes-even-without-shrink"),
    ],
)
def test_victims_as_heat_picks_them(remove, target, doomed, ignored):
    assert victims(members(4), remove, target) == (doomed, ignored)
