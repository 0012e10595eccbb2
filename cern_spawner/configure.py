"""One call that adds cern-spawner to a hub's configuration: `configure_hub(c)`.

In jupyterhub_config.py (or z2jh's `hub.extraConfig`), after the hub's own settings::

    from cern_spawner import configure_hub
    configure_hub(c, profiles="/etc/cern-spawner/profiles")

Everything else is configured as usual, through `c.CERNSpawner`, `c.KubeSpawner`,
`c.CERNAuthenticator`, `c.BinderConfig` and `c.GPUScaling`. Apart from scheduling GPU growth's start
on the hub's event loop (a no-op when none runs, as in tests), the call only writes into `c`, so
what it sets is tested as data (as TLJH's `apply_config(config, c)`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from traitlets.config import Config, LazyConfigValue

from .heap import YOUNG_THRESHOLD
from .web import HUB_TEMPLATE_DIR


def configure_hub(
    c: Config,
    *,
    profiles: str | Path | Iterable[str | Path] | None = None,
    authenticator: bool = True,
    binder: bool | None = None,
    gpu_scaling: bool = True,
    culling: bool = True,
    freeze_heap: bool = True,
    young_gc_threshold: int | None = YOUNG_THRESHOLD,
) -> None:
    """Wire cern-spawner into the hub configuration `c`.

    - the spawner: `JupyterHub.spawner_class` is CERNSpawner (its profile picker is its own
      default form template), reading the catalog from `profiles` (files or directories; None:
      `CERNSpawner.profiles_path` as configured, by default where the Helm chart mounts it);
    - `authenticator`: CERN single sign-on (CERNAuthenticator, set up through
      `c.CERNAuthenticator`); False keeps the hub's own authenticator;
    - the spawn page's progress template (appended to `JupyterHub.template_paths`, after the hub's
      own) and the cern API handlers (/hub/api/cern/…, appended to `JupyterHub.extra_handlers`);
    - the admins' service status page, /hub/cern/admin (scopes admin-ui, read:hub, read:servers);
    - `binder`: the repository launch routes (/hub/binder/v2/…); None mounts them when
      `c.BinderConfig.registry` is set by now (launches are on);
    - `gpu_scaling`: start GPU node-group growth with the hub (when `c.GPUScaling.openstack_cloud`
      is set in the hub's final config), so that groups grown before a restart shrink even if
      nobody comes by;
    - `culling`: stop idle and old servers per their profile's catalog settings (`c.Culling`), as
      the service `cern-culler` running in the hub process, and warn users first (the home page's
      banner, /hub/api/cern/notices, /hub/cern/keep);
    - `freeze_heap`: once the hub serves, keep its start-up objects out of the garbage collector's
      full passes (`cern_spawner.heap`), which otherwise stall the event loop ~0.16 s each, and
      run the young passes every `young_gc_threshold` net allocations (default 10,000, against
      Python's 700: ~2 % of a spawn's CPU; None keeps Python's). Both once the hub serves; neither
      without `freeze_heap`.
    """
    if young_gc_threshold is not None and (
        not isinstance(young_gc_threshold, int)
        or isinstance(young_gc_threshold, bool)
        or young_gc_threshold < 1
    ):
        raise ValueError(
            f"configure_hub(young_gc_threshold={young_gc_threshold!r}): a number of allocations, at least 1"
        )
    from .web.admin import admin_handlers
    from .web.handlers import handlers

    c.JupyterHub.spawner_class = "cern"
    if profiles is not None:
        paths = [profiles] if isinstance(profiles, (str, Path)) else list(profiles)
        c.CERNSpawner.profiles_path = [str(path) for path in paths]
    if authenticator:
        c.JupyterHub.authenticator_class = "cern"
    _extend(c.JupyterHub, "template_paths", [HUB_TEMPLATE_DIR])
    routes = list(handlers) + admin_handlers
    if culling:
        from .culling.handlers import handlers as culling_handlers

        routes += culling_handlers
    if binder is None:
        binder = bool(_get(c, "BinderConfig", "registry"))
    if binder:
        from .binder.handlers import binder_handlers

        routes += binder_handlers()
    _extend(c.JupyterHub, "extra_handlers", routes)
    if culling:
        from .culling.hub import configure as configure_culling

        configure_culling(c)
    if gpu_scaling:
        from .scaling.startup import start_with_hub

        start_with_hub(c)
    if freeze_heap:
        from .heap import freeze_after_start

        freeze_after_start(young_gc_threshold)


def _get(c: Config, section: str, name: str):
    # _has_section: reading c.Section on a Config would create it.
    return c[section].get(name) if c._has_section(section) else None


def _extend(section: Config, name: str, items: list) -> None:
    """Add `items` to a list setting, keeping what the hub's config already has (and not adding
    twice when called again)."""
    current = section[name] if name in section else None
    if isinstance(current, LazyConfigValue):  # c.X.y.append(...) so far: merged with the default later
        # (not get_value: it caches the value it computes, dropping later edits)
        current.extend([item for item in items if item not in current.to_dict().get("extend", [])])
    else:
        current = list(current or [])
        section[name] = current + [item for item in items if item not in current]
