"""The one scope check of cern-spawner's hub handlers: a short 403 for the user, details in the log."""

from __future__ import annotations

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import has_scope
from tornado import web


def require_scope(handler: APIHandler, scope: str, message: str) -> None:
    """403 with `message` unless the request's session or token holds `scope`; details in the log."""
    if has_scope(scope, handler.parsed_scopes, db=handler.db):
        return
    caller = handler.current_user
    handler.log.warning(
        "Refusing %s %s to %s %r: scope %s not held (its scopes: %s)",
        handler.request.method,
        handler.request.path,
        getattr(caller, "kind", "caller"),
        getattr(caller, "name", None),
        scope,
        ", ".join(sorted(handler.expanded_scopes)),
    )
    raise web.HTTPError(403, message)
