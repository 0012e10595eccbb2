"""The session the quota hooks use: our own, on the hub's database engine.

JupyterHub 5 deprecates the shared session at `Spawner.db` (reading it logs a six-line warning for
each spawner) and asks extensions to manage their own connections. The ledger therefore keeps one
session per hub engine and process, reached through the spawner's user (whose `db` is the hub's
session, not deprecated): no second engine or pool, no per-spawner setup, and every write is
committed at once, so the hub's own session sees it.
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

_sessions: WeakKeyDictionary[Engine, Session] = WeakKeyDictionary()


def quota_session(spawner) -> Session | None:
    """The session the hooks read and write `spawner`'s GPU sessions through; None when there is
    no hub database (a spawner built outside a hub accounts nothing)."""
    given = _given_session(spawner)
    if given is not None:
        return given
    hub_db = getattr(getattr(spawner, "user", None), "db", None)
    if not isinstance(hub_db, Session):
        return None
    engine = hub_db.get_bind()
    session = _sessions.get(engine)
    if session is None:
        session = _sessions[engine] = Session(bind=engine)
    return session


def _given_session(spawner) -> Session | None:
    """A session handed to the spawner itself (its `db` set explicitly, as tests do): that one.
    A trait's value is read without its default, which is the deprecated shared session."""
    values = getattr(spawner, "_trait_values", None)
    if values is not None:
        return values.get("db")
    return getattr(spawner, "db", None)
