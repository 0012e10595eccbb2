"""Errors users read: a request refused, or a start given up, in words a person understands.

`UserFacingError` is a tornado HTTPError: `status` is the HTTP answer, `message` the words;
JupyterHub shows `jupyterhub_message` wherever a spawn's failure surfaces (the form drawn again, the
spawn page, the REST answer), and `str()` is the message alone, so "Spawn failed: <message>" reads
as a sentence. Messages quote user input with `logsafe.shown`; details go to the log.

- `Refused`: the user's doing (a choice not offered, a repository not allowed, a launch not
  confirmed); logged as one warning line, never a traceback (`logsafe.install_refusal_filter`).
  `options.OptionsRefused`, `binder.errors.BinderRefused` and `binder.spawning.SpawnRefused` are it.
- `web.failures.SpawnFailed`: a start given up (no GPU to be had, its timeout over); an error.
"""

from __future__ import annotations

from tornado import web


class UserFacingError(web.HTTPError):
    def __init__(self, status: int, message: str):
        # tornado's log_message is what JupyterHub's error page shows (escaped).
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.jupyterhub_message = message

    def __str__(self) -> str:
        return self.message


class Refused(UserFacingError):
    """A request refused before anything was created; `status` is 4xx (or, for a launch whose
    build or registry failed, the 5xx to answer with)."""
