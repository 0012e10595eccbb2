"""The profile catalog a running hub serves: the last good one, reloaded when its files change.

Both edit styles reach us as changed content: an editor rewriting a file, and a Kubernetes
ConfigMap volume update, where the kubelet swaps the `..data` symlink atomically. So a check reads
the files (a few kilobytes) and compares a digest, rather than trusting mtimes through symlinks.
A catalog that fails to load is never applied: the last good one stays, and the error is kept
for admins until a good edit replaces it. Nor is one whose files changed while it was loaded: a
file cut in the middle of a write may still parse (a profile without its `allowed_roles` would be
open to everyone), so the digest must be the same before and after loading; the next check
retries. An editor that stops for long in the middle of a write is not caught by this: write
files by renaming a complete temporary file, as the kubelet's ConfigMap swap does.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from . import metrics
from .catalog import Catalog, CatalogError, load_catalog


def files_of(paths: Iterable[str | Path]) -> list[Path]:
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted(p for p in path.glob("*.yaml") if p.is_file()))
        elif path.exists():
            found.append(path)
    return found


def digest_of(paths: Iterable[str | Path]) -> str:
    digest = hashlib.sha256()
    for file in files_of(paths):
        digest.update(str(file).encode() + b"\0")
        try:
            digest.update(file.read_bytes())
        except OSError:  # vanished between listing and reading: the next check sees the new state
            digest.update(b"<unreadable>")
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class Refusal:
    """Why the latest edit was not applied."""

    error: CatalogError
    digest: str
    since: float  # wall-clock seconds

    def as_json(self) -> dict:
        return {
            "since": self.since,
            "message": "The latest profile edit was refused; the previous catalog is still served.",
            "problems": [str(problem) for problem in self.error.problems],
        }


class CatalogStore:
    def __init__(
        self,
        paths: Iterable[str | Path],
        *,
        log: logging.Logger,
        min_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ):
        self.paths = tuple(str(p) for p in paths)
        self.log = log
        self.min_interval = min_interval
        self.clock = clock
        self.wall_clock = wall_clock
        self.refusal: Refusal | None = None
        self._digest = digest_of(self.paths)
        # No last good catalog exists yet: a broken one at start-up is fatal, with the same message.
        self.catalog: Catalog = load_catalog(self.paths)
        self._log_warnings(self.catalog)
        self.loaded_at = wall_clock()
        self._checked = clock()
        metrics.CATALOG_APPLIED_AT.set(self.loaded_at)

    def current(self) -> Catalog:
        """The catalog to serve now, after a check if the last one is older than min_interval."""
        if self.clock() - self._checked >= self.min_interval:
            self.check()
        return self.catalog

    def check(self) -> bool:
        """Reload if the files changed; True when a new catalog was applied."""
        self._checked = self.clock()
        digest = digest_of(self.paths)
        if digest == self._digest:
            if self.refusal:  # the broken edit was reverted
                self.refusal = None
                metrics.CATALOG_EDIT_REFUSED.set(0)
                self.log.info("Profile catalog edit reverted to the served version")
            return False
        if self.refusal and self.refusal.digest == digest:
            return False  # the same broken content: already reported
        try:
            catalog = load_catalog(self.paths)
        except CatalogError as e:
            if digest_of(self.paths) != digest:
                return self._still_being_written()
            self.refusal = Refusal(e, digest, self.wall_clock())
            metrics.CATALOG_RELOADS.labels("refused").inc()
            metrics.CATALOG_EDIT_REFUSED.set(1)
            self.log.error(
                "Profile catalog edit refused, still serving version %s:\n%s", self.catalog.version[:12], e
            )
            return False
        if digest_of(self.paths) != digest:
            return self._still_being_written()
        self.catalog, self._digest, self.refusal = catalog, digest, None
        self._log_warnings(catalog)
        self.loaded_at = self.wall_clock()
        metrics.CATALOG_RELOADS.labels("applied").inc()
        metrics.CATALOG_EDIT_REFUSED.set(0)
        metrics.CATALOG_APPLIED_AT.set(self.loaded_at)
        self.log.info(
            "Profile catalog %s applied: %d profiles, %d node groups",
            catalog.version[:12],
            len(catalog.profiles),
            len(catalog.node_groups),
        )
        return True

    def _log_warnings(self, catalog: Catalog) -> None:
        # Served all the same: suspicious settings (e.g. a max_age below the idle timeout), not errors.
        for warning in catalog.warnings:
            self.log.warning("Profile catalog: %s", warning)

    def _still_being_written(self) -> bool:
        # Neither applied nor refused: what was read may be half of a write.
        self.log.info("Profile files changed while being read; checking again at the next request")
        return False

    def status(self) -> dict:
        return {
            "paths": list(self.paths),
            "version": self.catalog.version,
            "loaded_at": self.loaded_at,
            "sources": list(self.catalog.sources),
            "profiles": [p.slug for p in self.catalog.profiles],
            "node_groups": sorted(self.catalog.node_groups),
            "refused_edit": self.refusal.as_json() if self.refusal else None,
        }


# One store per set of paths for the whole hub process: every spawner shares it.
_stores: dict[tuple[str, ...], CatalogStore] = {}
# The same, by the paths as configured: every form and start asks, and resolving costs syscalls.
_by_given: dict[tuple[str, ...], CatalogStore] = {}


def shared_store(paths: Iterable[str | Path], *, log: logging.Logger, min_interval: float) -> CatalogStore:
    given = tuple(map(str, paths))
    store = _by_given.get(given)
    if store is None:
        key = tuple(str(Path(p).resolve()) for p in given)
        if key not in _stores:
            _stores[key] = CatalogStore(key, log=log, min_interval=min_interval)
        store = _by_given[given] = _stores[key]
    return store


def all_stores() -> list[CatalogStore]:
    return list(_stores.values())
