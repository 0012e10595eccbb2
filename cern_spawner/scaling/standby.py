"""Standby GPUs: how many free GPUs a node group keeps ready at a given moment. Pure: the moment
is an argument.

A group's catalog entry may declare, under `scaling.standby`, a number of GPUs to keep free during
weekly time windows in one time zone (e.g. weekdays 08:00-18:00 Europe/Zurich), so that the first
users of the day find a node already booted. Windows are read in local wall-clock time through
zoneinfo, so 08:00 stays 08:00 across daylight-saving changes. Standby is capacity, not a
reservation: any user may take a standby GPU, and the planner then grows to restore it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_HINT = 'days are mon..sun, ranges ("mon-fri") and lists ("mon,wed,fri"), or "daily"'


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # weekdays, Monday 0
    start: int  # minutes after local midnight
    end: int  # minutes after local midnight, > start; 1440 is "24:00"

    def covers(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        return local.weekday() in self.days and self.start <= minute < self.end


@dataclass(frozen=True)
class Standby:
    gpus: int
    timezone: str
    windows: tuple[Window, ...]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def parse_days(text: str) -> frozenset[int]:
    """ "mon-fri", "sat,sun", "mon-wed,fri", "daily" → weekday numbers; ValueError naming the part."""
    if text.strip().lower() == "daily":
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.lower().split(","):
        first, _, last = (p.strip() for p in part.partition("-"))
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"unknown days {part.strip()!r}")
        a, b = DAYS.index(first), DAYS.index(last or first)
        if b < a:
            raise ValueError(f"day range {part.strip()!r} goes backwards")
        days.update(range(a, b + 1))
    return frozenset(days)


def parse_clock(text: str) -> int:
    """ "08:00" → 480 minutes; "24:00" is the end of the day."""
    hours, sep, minutes = text.partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit() and len(hours) == len(minutes) == 2):
        raise ValueError(f"time {text!r} is not HH:MM")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) >= 60 or value > 24 * 60:
        raise ValueError(f"time {text!r} is not between 00:00 and 24:00")
    return value


def parse_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown time zone {name!r}") from e
    return name


def parse_window(data: Mapping) -> Window:
    window = Window(parse_days(data["days"]), parse_clock(data["from"]), parse_clock(data["to"]))
    if window.end <= window.start:
        raise ValueError(
            f"window ends at {data['to']!r}, not after it starts at {data['from']!r} "
            "(split a window across midnight in two)"
        )
    return window


def parse(data: Mapping | None) -> Standby | None:
    """The catalog's `scaling.standby` (schema-valid) as a Standby; ValueError on a bad zone, day or time."""
    if not data or not data.get("gpus"):
        return None
    return Standby(
        gpus=int(data["gpus"]),
        timezone=parse_zone(data.get("timezone", "UTC")),
        windows=tuple(parse_window(w) for w in data.get("windows") or ()),
    )


def standby_gpus(standby: Standby | None, now: datetime) -> int:
    """Free GPUs to keep ready at `now` (an aware datetime): the standby's count inside a window, else 0."""
    if standby is None:
        return 0
    local = now.astimezone(standby.zone)
    return standby.gpus if any(w.covers(local) for w in standby.windows) else 0


def next_change(standby: Standby | None, now: datetime) -> datetime | None:
    """The first window start or end after `now`, so the controller wakes up for it; None without
    windows. (A window edge inside a spring-forward gap is woken for late; the periodic refresh
    sees it.)"""
    if standby is None or not standby.windows:
        return None
    zone = standby.zone
    today = now.astimezone(zone).date()
    moments = [
        _at(today + timedelta(days=offset), minute, zone)
        for offset in range(8)
        for window in standby.windows
        if (today + timedelta(days=offset)).weekday() in window.days
        for minute in (window.start, window.end)
    ]
    return min((m for m in moments if m > now), default=None)


def _at(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """`minute` after local midnight of `day` in `zone`, in wall-clock time (08:00 stays 08:00 on a
    DST change day; 1440 is the next midnight)."""
    day += timedelta(days=minute // 1440)
    minute %= 1440
    return datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=zone)
