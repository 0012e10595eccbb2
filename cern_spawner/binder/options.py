"""The binder part of a spawn's user_options: `binder_repo` and `binder_ref` next to the profile.

Pure functions. `split_form` takes the binder fields out of form or query data before KubeSpawner
reads the rest; `check_binder_options` runs on every spawn path (form, link, REST API) and is the
only place that decides whether a repository launch may go ahead. The image is never part of
the options: the spawner sets it from the build result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .errors import BinderRefused
from .refs import check_ref, check_repo_url

BINDER_KEYS = ("binder_repo", "binder_ref")
DEFAULT_REF = "HEAD"
# KubeSpawner's suffix for a typed-in value (cern_spawner.options.UNLISTED_SUFFIX; not imported,
# since that module imports this one).
_UNLISTED_SUFFIX = "--unlisted-choice"

NOT_ENABLED = "Launching from a git repository is not enabled on this hub."
IMAGE_CHOSEN = "The image of a repository launch is built by the hub; it cannot be chosen."


def split_form(formdata: Mapping[str, list[str]]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """(the rest of the form data, binder options) from a form post or spawn query.

    The rest goes to KubeSpawner's `options_from_form`; the binder options join its result.

    An empty repository field means no repository launch (the picker always posts the field), so
    the binder options are then {}. An empty ref means HEAD. Values are trimmed; the first of
    repeated values counts, as KubeSpawner reads its own fields.
    """
    rest = {key: values for key, values in formdata.items() if key not in BINDER_KEYS}
    repo = _first(formdata.get("binder_repo"))
    if not repo:
        return rest, {}
    return rest, {"binder_repo": repo, "binder_ref": _first(formdata.get("binder_ref")) or DEFAULT_REF}


def _first(values: Iterable[str] | None) -> str:
    for value in values or ():
        return value.strip() if isinstance(value, str) else ""
    return ""


def check_binder_options(
    user_options: Mapping,
    *,
    enabled: bool,
    allowed_hosts: Iterable[str],
    insecure_origins: Iterable[str] = (),
) -> tuple[str, str] | None:
    """(normalized repository URL, ref) of a repository launch, None when the options hold none.

    BinderRefused (400/403) when binder launches are off, a value is not a string, the options
    try to choose the image, or the repository or ref is not acceptable (see refs).
    """
    if not any(key in user_options for key in BINDER_KEYS):
        return None
    if not enabled:
        raise BinderRefused(400, NOT_ENABLED)
    repo = user_options.get("binder_repo")
    ref = user_options.get("binder_ref", DEFAULT_REF)
    for name, value in (("binder_repo", repo), ("binder_ref", ref)):
        if value is not None and not isinstance(value, str):
            raise BinderRefused(400, f"{name} must be a string.")
    # Any choice of image (top-level, or a profile option of that name, listed or typed in) would
    # start something other than what was built.
    if any(isinstance(key, str) and key.removesuffix(_UNLISTED_SUFFIX) == "image" for key in user_options):
        raise BinderRefused(400, IMAGE_CHOSEN)
    if not repo or not repo.strip():
        raise BinderRefused(400, "binder_repo is empty: give the https URL of the git repository to launch.")
    repo_url = check_repo_url(repo.strip(), allowed_hosts, insecure_origins)
    return repo_url, check_ref((ref or DEFAULT_REF).strip())
