"""GPU sessions and admins' overrides, in two tables of ours in the hub's own database.

JupyterHub's database outlives hub restarts and pod moves (sqlite on the hub's volume, or an
external PostgreSQL/MySQL), so accounting needs no store of its own. The tables are created if
missing through the hub's session (JupyterHub's migrations never touch tables they do not know),
and every write is committed at once, as JupyterHub commits its own — except the session starts of
a burst of GPU starts, written together (`Ledger.open`, below) a moment later.

Times are epoch seconds (UTC), as floats: portable across the hub's database kinds.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
from weakref import WeakKeyDictionary, WeakSet

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    Table,
    Unicode,
    UnicodeText,
    bindparam,
    delete,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from .policy import Override
from .usage import GpuSession

metadata = MetaData()
sessions_table = Table(
    "cern_spawner_gpu_sessions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", Unicode(255), nullable=False, index=True),
    Column("server_name", Unicode(255), nullable=False, default=""),
    Column("profile", Unicode(255), nullable=False),
    Column("gpus", Integer, nullable=False),
    Column("quota_role", Unicode(255), nullable=False, default=""),  # the metrics' label
    Column("started", Float, nullable=False),
    Column("stopped", Float, nullable=True, index=True),
)
overrides_table = Table(
    "cern_spawner_quota_overrides",
    metadata,
    Column("username", Unicode(255), primary_key=True),
    Column("gpus", Integer, nullable=True),
    Column("gpu_hours", Float, nullable=True),
    Column("expires", Float, nullable=True),
    Column("reason", UnicodeText, nullable=False, default=""),
    Column("set_by", Unicode(255), nullable=False, default=""),
    Column("set_at", Float, nullable=True),
)

# What `Ledger.open` runs at every GPU start: a session left open for the server (a stop never
# seen) ends, then the new one is inserted. No read first: what the closed one used is not needed.
_END_OPEN = (
    update(sessions_table)
    .where(
        sessions_table.c.username == bindparam("b_user"),
        sessions_table.c.server_name == bindparam("b_server"),
        sessions_table.c.stopped.is_(None),
    )
    .values(stopped=bindparam("b_now"))
)
_INSERT = sessions_table.insert()

log = logging.getLogger(__name__)

# Session starts not written yet, per hub engine: (the session that queued them, their rows in
# order). Each GPU start's own transaction and commit cost more hub CPU than the rest of our start;
# a burst's are written in one, at most WRITE_DELAY s later. Every other use of the tables writes
# them first, so this process always reads its own writes (a stop never ends a session still
# queued). A hub that dies within that moment loses them: on its restart, `started(only_if_missing)`
# opens a session for each GPU server it finds running without one, from JupyterHub's recorded
# start, so the delay costs no accounting. 5 s, not less: a burst's pods start as its nodes join,
# over seconds (0.5 s wrote ~7 transactions a burst of 30, ~1 % of the hub's CPU a spawn).
WRITE_DELAY = 5.0
_queued: WeakKeyDictionary[Engine, tuple[Session, list[dict]]] = WeakKeyDictionary()


def write_queued(engine: Engine | None = None) -> None:
    """Write the queued session starts of `engine` (None: of every engine) in one transaction each;
    a failure is logged with whose starts went unrecorded, as a failed start's would be."""
    for bound in [engine] if engine is not None else list(_queued):
        db, rows = _queued.pop(bound, (None, []))
        if not rows:
            continue
        ends, inserts = _burst_writes(rows)
        try:
            connection = db.connection()
            connection.execute(_END_OPEN, ends)  # lists of parameters: one executemany each
            connection.execute(_INSERT, inserts)
            db.commit()
        except SQLAlchemyError:
            db.rollback()
            log.exception("GPU sessions of %s not recorded", ", ".join(sorted({r["username"] for r in rows})))


def _burst_writes(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """The parameters of `_END_OPEN` (once per server, at its first start in the burst) and the rows
    to insert, in order. A server started twice in one burst (a stop never seen between) has its
    earlier session end at its later start, as two writes one after the other would."""
    ends: dict[tuple[str, str], dict] = {}
    latest: dict[tuple[str, str], dict] = {}
    inserts = []
    for queued in rows:
        row = dict(queued)
        key = (row["username"], row["server_name"])
        if key in latest:
            latest[key]["stopped"] = row["started"]
        else:
            ends[key] = {"b_user": key[0], "b_server": key[1], "b_now": row["started"]}
        latest[key] = row
        inserts.append(row)
    return list(ends.values()), inserts


atexit.register(write_queued)  # a hub stopped cleanly writes what it queued


class Ledger:
    """Reads and writes through `db`, the hub's session (`spawner.db`, `handler.db`, `app.db`)."""

    # Engines whose tables exist, checked once per engine and process: a Ledger is made per hook
    # call, so this must cost nothing after the first (one in-memory database per engine, too).
    _ready: WeakSet = WeakSet()

    def __init__(self, db: Session):
        self.db = db
        engine = db.get_bind()
        if engine not in Ledger._ready:
            metadata.create_all(db.connection(), checkfirst=True)
            db.commit()
            Ledger._ready.add(engine)

    def sessions(self, username: str, since: float) -> list[GpuSession]:
        """The user's sessions running, or stopped after `since`."""
        write_queued(self.db.get_bind())
        t = sessions_table
        rows = self.db.execute(
            select(t.c.server_name, t.c.profile, t.c.gpus, t.c.started, t.c.stopped)
            .where(t.c.username == username, or_(t.c.stopped.is_(None), t.c.stopped > since))
            .order_by(t.c.started)
        )
        return [GpuSession(r.server_name, r.profile, r.gpus, r.started, r.stopped) for r in rows]

    def open(self, username: str, server: str, profile: str, gpus: int, role: str, now: float) -> None:
        """A session of `server` begins; one left open for it (a stop never seen) ends now. Queued,
        and written with the others of the moment (see WRITE_DELAY); at once outside an event loop."""
        row = dict(
            username=username,
            server_name=server,
            profile=profile,
            gpus=gpus,
            quota_role=role,
            started=now,
            stopped=None,
        )
        engine = self.db.get_bind()
        _, rows = _queued.setdefault(engine, (self.db, []))
        rows.append(row)
        if len(rows) > 1:
            return  # a write is already scheduled
        try:
            asyncio.get_running_loop().call_later(WRITE_DELAY, write_queued, engine)
        except RuntimeError:
            write_queued(engine)

    def is_open(self, username: str, server: str) -> bool:
        write_queued(self.db.get_bind())
        t = sessions_table
        found = self.db.execute(
            select(t.c.id).where(t.c.username == username, t.c.server_name == server, t.c.stopped.is_(None))
        ).first()
        return found is not None

    def close(self, username: str, server: str, now: float) -> list[tuple[str, float]]:
        """End the server's open sessions; (role, GPU-hours) of each one ended, for the metrics."""
        write_queued(self.db.get_bind())
        t = sessions_table
        match = (t.c.username == username, t.c.server_name == server, t.c.stopped.is_(None))
        rows = self.db.execute(select(t.c.quota_role, t.c.gpus, t.c.started).where(*match)).all()
        if rows:
            self.db.execute(update(t).where(*match).values(stopped=now))
        # Ends the read's transaction too (every stop reads, GPU server or not): nothing held open.
        self.db.commit()
        return [(r.quota_role, r.gpus * max(0.0, now - r.started) / 3600) for r in rows]

    def override(self, username: str) -> Override | None:
        t = overrides_table
        row = self.db.execute(select(t).where(t.c.username == username)).first()
        if row is None:
            return None
        return Override(row.gpus, row.gpu_hours, row.expires, row.reason, row.set_by, row.set_at)

    def set_override(self, username: str, override: Override) -> None:
        values = dict(
            gpus=override.gpus,
            gpu_hours=override.gpu_hours,
            expires=override.expires,
            reason=override.reason,
            set_by=override.set_by,
            set_at=override.set_at,
        )
        t = overrides_table
        self.db.execute(delete(t).where(t.c.username == username))
        self.db.execute(t.insert().values(username=username, **values))
        self.db.commit()

    def clear_override(self, username: str) -> bool:
        t = overrides_table
        deleted = self.db.execute(delete(t).where(t.c.username == username)).rowcount
        self.db.commit()
        return bool(deleted)
