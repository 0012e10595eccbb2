"""Server-side checks of what a user asked to start, on every path (form, REST API, admin).

A pure function of the user's options, the catalog and the profiles offered to that user, so it
is tested without a hub. KubeSpawner 7.1 itself turns an unknown choice into a KeyError (500),
accepts a value that merely starts with a match of `validation_regex` (`re.match`), and never asks
whether the user may use a profile; these checks run first and answer 400/403 in plain words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .binder.options import BINDER_KEYS
from .catalog import Catalog
from .errors import Refused
from .logsafe import did_you_mean, shown

UNLISTED_SUFFIX = "--unlisted-choice"


class OptionsRefused(Refused):
    """A choice the user may not make; `status` is the HTTP status to answer with."""


def _did_you_mean(value: str, candidates) -> str:
    hint = did_you_mean(value, candidates)  # a sentence of its own here
    return f" {hint[:1].upper()}{hint[1:]}" if hint else ""


def check_user_options(user_options: Mapping, catalog: Catalog, offered: list[dict]) -> str | None:
    """Raise OptionsRefused unless `user_options` names an offered profile and valid choices.

    `offered` is the user's KubeSpawner profile_list (already filtered by role). Returns the slug
    that will be started (None means the default of the offered list). The repository fields of
    a binder launch are not profile options: `binder.options.check_binder_options` checks them.
    """
    if not isinstance(user_options, Mapping):
        raise OptionsRefused(400, "Server options must be a JSON object.")
    slug = user_options.get("profile")
    if slug is not None and not isinstance(slug, str):
        raise OptionsRefused(400, "The profile must be given by its name (a string).")
    by_slug = {entry["slug"]: entry for entry in offered}
    if not slug:
        if not offered:
            raise OptionsRefused(403, "No profile is available to you. Ask the service admins for access.")
        unknown = sorted(set(user_options) - {"profile", *BINDER_KEYS})
        if unknown:
            raise OptionsRefused(400, f"Unknown server option {shown(unknown[0])}: choose a profile first.")
        return None
    if slug not in by_slug:
        profile = catalog.profile(slug)
        if profile is None:
            raise OptionsRefused(
                400,
                f"There is no profile {shown(slug)}.{_did_you_mean(slug, by_slug)} "
                f"Available: {', '.join(by_slug) or 'none'}.",
            )
        roles = ", ".join(profile.allowed_roles)
        raise OptionsRefused(403, f"Profile '{slug}' is only available to users with the role: {roles}.")
    options = by_slug[slug].get("profile_options") or {}
    for key, value in user_options.items():
        if key == "profile" or key in BINDER_KEYS:
            continue
        name = key.removesuffix(UNLISTED_SUFFIX)
        if name not in options:
            raise OptionsRefused(
                400, f"Profile '{slug}' has no option {shown(name)}.{_did_you_mean(name, options)}"
            )
        if not isinstance(value, str):
            raise OptionsRefused(400, f"Option '{name}' of profile '{slug}' takes a string.")
        option = options[name]
        if key.endswith(UNLISTED_SUFFIX):
            unlisted = option.get("unlisted_choice") or {}
            if not unlisted.get("enabled"):
                raise OptionsRefused(
                    400, f"Option '{name}' of profile '{slug}' accepts only its listed choices."
                )
            # No image reference, tag or path holds whitespace or control characters; a value
            # with them is an attempt to smuggle something past a permissive pattern.
            if any(ch.isspace() or not ch.isprintable() for ch in value):
                raise OptionsRefused(
                    400, f"The value for '{name}' must not contain spaces or control characters."
                )
            pattern = unlisted.get("validation_regex")
            # The whole value must match (re.fullmatch), not just its beginning (KubeSpawner's re.match).
            if pattern and not re.fullmatch(pattern, value):
                hint = unlisted.get("validation_message") or f"it must match {pattern}"
                raise OptionsRefused(400, f"{shown(value)} is not a valid value for '{name}': {hint}.")
        elif value not in (choices := option.get("choices") or {}):
            raise OptionsRefused(
                400,
                f"{shown(value)} is not a choice of option '{name}'.{_did_you_mean(value, choices)} "
                f"Choices: {', '.join(choices)}.",
            )
    return slug


def override_keys(entry: Mapping) -> set[str]:
    """The spawner traits a profile_list entry may override: its own `kubespawner_override` and those
    of every choice (listed or unlisted) of its options, whichever the user picks."""
    keys = set(entry.get("kubespawner_override") or {})
    for option in (entry.get("profile_options") or {}).values():
        for choice in (option.get("choices") or {}).values():
            keys.update(choice.get("kubespawner_override") or {})
        keys.update((option.get("unlisted_choice") or {}).get("kubespawner_override") or {})
    return keys
