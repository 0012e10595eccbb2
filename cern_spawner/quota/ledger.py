"""GPU sessions and admins' overrides, in two tables of ours in the hub's own database.

JupyterHub's database outlives hub restarts and pod moves (sqlite on the hub's volume, or an
external PostgreSQL/MySQL), so accounting needs no store of its own. The tables are created if
missing through the hub's session (JupyterHub's migrations never touch tables they do not know),
and every write is committed at once, as JupyterHub commits its own.

Times are epoch seconds (UTC), as floats: portable across the hub's database kinds.
"""

from __future__ import annotations

from weakref import WeakSet

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
        t = sessions_table
        rows = self.db.execute(
            select(t.c.server_name, t.c.profile, t.c.gpus, t.c.started, t.c.stopped)
            .where(t.c.username == username, or_(t.c.stopped.is_(None), t.c.stopped > since))
            .order_by(t.c.started)
        )
        return [GpuSession(r.server_name, r.profile, r.gpus, r.started, r.stopped) for r in rows]

    def open(self, username: str, server: str, profile: str, gpus: int, role: str, now: float) -> None:
        """A session of `server` begins; one left open for it (a stop never seen) ends now."""
        # Statements built once, run on the session's connection (no ORM execution layer): building
        # and running them through the session cost ~4 ms of hub CPU per GPU start.
        connection = self.db.connection()
        connection.execute(_END_OPEN, {"b_user": username, "b_server": server, "b_now": now})
        connection.execute(
            _INSERT,
            dict(
                username=username,
                server_name=server,
                profile=profile,
                gpus=gpus,
                quota_role=role,
                started=now,
                stopped=None,
            ),
        )
        self.db.commit()

    def is_open(self, username: str, server: str) -> bool:
        t = sessions_table
        found = self.db.execute(
            select(t.c.id).where(t.c.username == username, t.c.server_name == server, t.c.stopped.is_(None))
        ).first()
        return found is not None

    def close(self, username: str, server: str, now: float) -> list[tuple[str, float]]:
        """End the server's open sessions; (role, GPU-hours) of each one ended, for the metrics."""
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
