"""What the scaling controller must remember across hub restarts, in one small JSON file.

- measured node boots per group (the expected wait users are told is their median);
- what growth raised and must put back: the cloud's max_node_count before growth raised it;
- the groups the hub has grown, so a group removed from the catalog is still returned to its
  baseline instead of being forgotten.

Written atomically (write, then rename); a missing or unreadable file is an empty memory.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
from pathlib import Path

KEEP_BOOTS = 20  # recent boots per group that the expected time is the median of


class Memory:
    def __init__(self, path: str | os.PathLike | None, log: logging.Logger | None = None):
        self.path = Path(path) if path else None
        self.log = log or logging.getLogger(__name__)
        self.boots: dict[str, list[float]] = {}
        self.raised_max: dict[str, int | None] = {}
        self.grown: dict[str, dict] = {}
        self._load()

    def _load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text())
            self.boots = {g: [float(s) for s in v][-KEEP_BOOTS:] for g, v in data.get("boots", {}).items()}
            self.raised_max = {g: v for g, v in data.get("raised_max", {}).items()}
            self.grown = {g: dict(v) for g, v in data.get("grown", {}).items()}
        except (OSError, ValueError, TypeError, AttributeError) as e:
            self.log.warning("Ignoring unreadable scaling memory %s: %s", self.path, e)

    def _save(self) -> None:
        if self.path is None:
            return
        data = {"boots": self.boots, "raised_max": self.raised_max, "grown": self.grown}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            staging = self.path.with_name(self.path.name + ".tmp")
            staging.write_text(json.dumps(data, indent=1, sort_keys=True))
            staging.replace(self.path)
        except OSError as e:  # the hub keeps working; only what it learned is not kept
            self.log.warning("Could not save scaling memory to %s: %s", self.path, e)

    # -- boot times ------------------------------------------------------------------------------
    def record_boot(self, group: str, seconds: float) -> None:
        self.boots.setdefault(group, []).append(round(float(seconds), 1))
        del self.boots[group][:-KEEP_BOOTS]
        self._save()

    def expected_boot(self, group: str) -> float | None:
        """The median of the group's recent boots (seconds), None before the first."""
        boots = self.boots.get(group)
        return statistics.median(boots) if boots else None

    # -- what growth changed ---------------------------------------------------------------------
    def remember_growth(self, group: str, settings: dict, original_max: int | None, raised: bool) -> None:
        """Before the first write of a growth: the group's settings, and its max if we raise it."""
        changed = group not in self.grown
        self.grown[group] = settings
        if raised and group not in self.raised_max:
            self.raised_max[group] = original_max
            changed = True
        if changed:
            self._save()

    def forget_max(self, group: str) -> None:
        if self.raised_max.pop(group, "absent") != "absent":
            self._save()

    def forget_group(self, group: str) -> None:
        if self.grown.pop(group, None) is not None:
            self._save()
