"""The server options form CERNSpawner serves: the profile picker, with a banner for admins while a
catalog edit is refused.

A mixin of CERNSpawner (before KubeSpawner, whose form renderer it replaces). The picker itself is
rendered by `web.picker`; this part chooses what it shows and keeps rendered forms.
"""

from __future__ import annotations

import html
import json

from jupyterhub.utils import url_path_join

from .bounded import Bounded
from .options import OptionsRefused, check_user_options
from .quota import hooks as quota
from .web.cards import with_quota
from .web.picker import render_picker


class OptionsForm:
    """Needs `catalog_store`, `_offered()` and `binder_form_context()` from the spawner it is mixed into."""

    # (catalog version, offered slugs, saved options) -> rendered form; read through type(self) so
    # that a test or benchmark replacing CERNSpawner._form_cache replaces the one used.
    _form_cache: Bounded[str] = Bounded(max_entries=1024)

    async def _render_options_form_dynamically(self, current_spawner):
        # KubeSpawner builds a Jinja environment and renders its template on every call (~5 ms);
        # the result depends only on the offered profiles and the saved options, so keep it.
        catalog = self.catalog_store.current()
        offered = await self._offered()
        saved = self.user_options or {}
        try:
            check_user_options(saved, catalog, offered)
        except OptionsRefused:
            # Saved options of a profile or choice that is gone (or no longer the user's): preselect
            # the default. KubeSpawner 7.1 notices but renders the stale options, so nothing is checked.
            saved = {}
        binder = self.binder_form_context(saved)
        notes = await quota.card_notes(self, offered)  # this user's GPU quota, per GPU profile
        key = (
            catalog.version,
            tuple(p["slug"] for p in offered),
            json.dumps([saved, binder, notes], sort_keys=True, default=str),
        )
        form = type(self)._form_cache.get(key)
        if form is None:
            current, self.user_options = self.user_options, saved
            try:
                form = render_picker(
                    self.additional_profile_form_template_paths,
                    with_quota(offered, notes),  # initialized by to_profile_list; the template only reads it
                    saved,
                    binder,
                )
            finally:
                self.user_options = current
            type(self)._form_cache.put(key, form)
        return self._refused_edit_banner() + form

    def _refused_edit_banner(self) -> str:
        """For admins, while the catalog's last edit is refused: what to fix ("" otherwise)."""
        refusal = self.catalog_store.refusal
        if not (refusal and self.user.admin):
            return ""
        problems = "".join(f"<li>{html.escape(str(p))}</li>" for p in refusal.error.problems)
        status = html.escape(url_path_join(self.hub.base_url, "cern/admin"))  # the admin page
        return (
            '<div class="alert alert-danger" role="alert"><strong>Profile catalog edit refused.</strong> '
            f'The previous catalog is still served (<a href="{status}">service status</a>). '
            f"Fix:<ul>{problems}</ul></div>"
        )
