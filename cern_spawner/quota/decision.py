"""Start a GPU server or refuse it, and the words users read (the refusal, the picker's card). Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from .policy import Limits
from .usage import GpuSession, frees_at, gpu_seconds, running_gpus

HOUR = 3600.0


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: str = ""  # the limit that refused: "gpus" or "gpu_hours"; "" when allowed
    message: str = ""  # why refused, in words; empty when allowed
    used_hours: float = 0.0
    limit_hours: float | None = None
    frees_at: float | None = None  # epoch seconds when some GPU-hours free (gpu_hours refusals)
    gpus_in_use: int = 0
    gpus_limit: int | None = None

    @property
    def left_hours(self) -> float | None:
        return None if self.limit_hours is None else max(0.0, self.limit_hours - self.used_hours)


def decide(
    limits: Limits,
    sessions: Sequence[GpuSession],
    *,
    gpus: int,
    now: float,
    window: float,
    server: str = "",
    pending_gpus: int = 0,
) -> Verdict:
    """May a server `server` asking for `gpus` GPUs start now?

    - CPU-only profiles (gpus 0) always may;
    - `gpus` on top of those held by the user's other running servers (and `pending_gpus`, asked
      by other starts still in flight) may not exceed `limits.gpus`;
    - the user's GPU-hours within the window must be below `limits.gpu_hours`: a session is not
      cut when it reaches the limit, so the check is only that some are left.
    """
    used = gpu_seconds(sessions, now, window) / HOUR
    held = running_gpus(sessions, except_server=server) + pending_gpus
    common = dict(used_hours=used, limit_hours=limits.gpu_hours, gpus_in_use=held, gpus_limit=limits.gpus)
    if gpus <= 0:
        return Verdict(True, **common)
    if limits.gpus is not None and held + gpus > limits.gpus:
        if gpus > limits.gpus:
            message = (
                f"This profile uses {_gpus(gpus)}; your quota allows {_gpus(limits.gpus)} at a time."
                " Choose a profile with fewer GPUs, or ask the service's administrators."
            )
        else:
            message = (
                f"You are using {held} of your {_gpus(limits.gpus)} at a time on other servers;"
                " stop one of them to start this one."
            )
        return Verdict(False, "gpus", message, **common)
    if limits.gpu_hours is not None and used >= limits.gpu_hours:
        hours = limits.gpu_hours
        amount = min(1.0, hours)
        at = frees_at(sessions, now, window, (hours - amount) * HOUR) if amount > 0 else None
        message = f"You have used {_num(used)} of {_num(hours)} GPU-hours in the last {window_words(window)}"
        if at is None:
            message += "; ask the service's administrators for more."
        else:
            message += f"; {_num(amount)} GPU-hour{'' if amount == 1 else 's'} frees at {when(at, now)}"
            if held:
                message += " if your running GPU servers stop now"
            message += "."
        return Verdict(False, "gpu_hours", message, **common, frees_at=at)
    return Verdict(True, **common)


def card_line(verdict: Verdict, window: float) -> str:
    """The picker card's quota line, e.g. "GPU quota: 6.5 of 10 GPU-hours left (7 days), 1 of 2 GPUs
    in use"; empty when nothing is limited."""
    parts = []
    if verdict.limit_hours is not None:
        parts.append(
            f"{_num(verdict.left_hours)} of {_num(verdict.limit_hours)} GPU-hours left"
            f" (last {window_words(window)})"
        )
    if verdict.gpus_limit is not None:
        parts.append(f"{verdict.gpus_in_use} of {_gpus(verdict.gpus_limit)} in use")
    return f"GPU quota: {', '.join(parts)}" if parts else ""


def window_words(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}" if count == 1 else f"{count} {unit}s"
    return f"{seconds:g} seconds"


def when(at: float, now: float) -> str:
    """'14:00 UTC Thursday 10 December'; 'today'/'tomorrow' instead of the day when they are."""
    moment = datetime.fromtimestamp(at, UTC)
    days = (moment.date() - datetime.fromtimestamp(now, UTC).date()).days
    day = {0: "today", 1: "tomorrow"}.get(days) or f"{moment:%A} {moment.day} {moment:%B}"
    return f"{moment:%H:%M} UTC {day}"


def _gpus(count: int) -> str:
    return f"{count} GPU" if count == 1 else f"{count} GPUs"


def _num(value: float) -> str:
    """Hours as people write them: 10, 9.5, 0.25, 0.00556 (three significant digits below 1)."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 1 or value == 0:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.3g}" if value >= 1e-4 else "0"
