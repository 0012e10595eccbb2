"""Roles from claims (fail closed), and the login/admin decisions made from them."""

from __future__ import annotations

import logging

import pytest

from cern_spawner.auth.errors import GrantRejected, ProviderUnavailable, TokenInvalid
from cern_spawner.auth.refresh import Decision, keep_after_failure, refresh_decision
from cern_spawner.auth.roles import is_admin, is_allowed, roles_from_claims

pytestmark = pytest.mark.unit
RESOURCE = "resource_access.{client_id}.roles"

ROLE_CASES = {
    "resource-access": ({"resource_access": {"hub": {"roles": ["b", "a"]}}}, RESOURCE, ["a", "b"]),
    "other-client-only": ({"resource_access": {"other": {"roles": ["a"]}}}, RESOURCE, []),
    "cern-roles": ({"cern_roles": ["gpu-users", "gpu-users"]}, "cern_roles", ["gpu-users"]),
    "cern-roles-ignores-resource-access": ({"resource_access": {"hub": {"roles": ["x"]}}}, "cern_roles", []),
    "missing": ({}, RESOURCE, []),
    "roles-is-string": ({"cern_roles": "gpu-users"}, "cern_roles", []),
    "roles-has-number": ({"cern_roles": ["gpu-users", 3]}, "cern_roles", []),
    "roles-has-empty": ({"cern_roles": ["gpu-users", ""]}, "cern_roles", []),
    "roles-is-dict": ({"cern_roles": {"gpu-users": True}}, "cern_roles", []),
    "client-is-list": ({"resource_access": {"hub": ["a"]}}, RESOURCE, []),
    "resource-access-is-string": ({"resource_access": "hub"}, RESOURCE, []),
    "null": ({"cern_roles": None}, "cern_roles", []),
}


@pytest.mark.parametrize("claims, path, expected", ROLE_CASES.values(), ids=ROLE_CASES.keys())
def test_roles_from_claims(claims, path, expected, caplog):
    with caplog.at_level(logging.WARNING):
        assert roles_from_claims(claims, path, "hub") == expected
    if not expected:
        assert "roles" in caplog.text, "no roles must be explained in the log"


def test_client_id_with_dots():
    claims = {"resource_access": {"my.hub": {"roles": ["a"]}}}
    assert roles_from_claims(claims, RESOURCE, "my.hub") == ["a"]


ACCESS_CASES = {
    "no-allowed-roles-any-user": ([], [], True),
    "no-allowed-roles-no-roles": ([], ["x"], True),
    "has-allowed-role": (["gpu-users"], ["gpu-users", "other"], True),
    "lacks-allowed-role": (["gpu-users"], ["other"], False),
    "no-roles": (["gpu-users"], [], False),
}


@pytest.mark.parametrize("allowed, roles, expected", ACCESS_CASES.values(), ids=ACCESS_CASES.keys())
def test_is_allowed(allowed, roles, expected):
    assert is_allowed(roles, allowed) is expected


ADMIN_CASES = {
    "no-admin-roles": ([], ["hub-admins"], False),
    "has-admin-role": (["hub-admins"], ["hub-admins"], True),
    "lacks-admin-role": (["hub-admins"], ["gpu-users"], False),
}


@pytest.mark.parametrize("admin_roles, roles, expected", ADMIN_CASES.values(), ids=ADMIN_CASES.keys())
def test_is_admin(admin_roles, roles, expected):
    assert is_admin(roles, admin_roles) is expected


DECISIONS = {
    "fresh": (dict(now=100, expires_at=300, has_refresh_token=True), Decision.KEEP),
    "within-margin": (dict(now=250, expires_at=300, has_refresh_token=True), Decision.REFRESH),
    "expired": (dict(now=400, expires_at=300, has_refresh_token=True), Decision.REFRESH),
    "unknown-expiry": (dict(now=100, expires_at=None, has_refresh_token=True), Decision.REFRESH),
    "within-margin-no-refresh-token": (dict(now=250, expires_at=300, has_refresh_token=False), Decision.KEEP),
    "expired-no-refresh-token": (dict(now=300, expires_at=300, has_refresh_token=False), Decision.RELOGIN),
}


@pytest.mark.parametrize("state, expected", DECISIONS.values(), ids=DECISIONS.keys())
def test_refresh_decision(state, expected):
    assert refresh_decision(margin=60, **state) is expected


FAILURES = {
    "invalid-grant": (GrantRejected(400, "invalid_grant"), 100, False),
    "network-before-expiry": (ProviderUnavailable("refused"), 100, True),
    "network-after-expiry": (ProviderUnavailable("refused"), 300, False),
    "refreshed-token-invalid": (TokenInvalid("bad signature"), 100, False),
}


@pytest.mark.parametrize("error, now, keep", FAILURES.values(), ids=FAILURES.keys())
def test_keep_after_failure(error, now, keep):
    assert keep_after_failure(error, now=now, expires_at=300) is keep
