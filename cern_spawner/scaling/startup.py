"""Start the scaling controller with the hub, not with its first spawner.

JupyterHub creates spawners only for running servers and for users who come by, so after a restart
with no server running a grown group would wait for the next visitor to be shrunk. Call
`start_with_hub(c)` at the end of jupyterhub_config.py: the hub loads its config inside its event
loop, and the controller starts at the loop's next turn.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class _NoUser:
    """The spawner built here only reads configuration; it never starts a server."""

    name: str = "cern-spawner-scaling"
    id: int = 0
    url: str = "/"


def start_with_hub(config) -> bool:
    """Schedule the controller's start; False when no event loop runs (a `jupyterhub` subcommand)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    loop.call_soon(_start, config)
    return True


def _start(config) -> None:
    from jupyterhub.app import JupyterHub

    from ..spawner import CERNSpawner  # imports kubespawner, which reads $KUBECONFIG at import

    if JupyterHub.initialized():  # the merged config, command line included
        config = JupyterHub.instance().config
    try:
        CERNSpawner(config=config, user=_NoUser())  # its __init__ starts the shared controller
    except Exception:  # the hub must still start; spawns will try again and report
        log.exception("Could not start the scaling controller with the hub")
