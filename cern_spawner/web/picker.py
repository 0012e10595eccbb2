"""Render the profile picker (templates/picker/form.html) with everything it shows.

KubeSpawner's own renderer passes only `profile_list` and `user_options`; the picker also needs the
repository-launch section's `binder` variable, so CERNSpawner renders the template itself, from the
same template paths (ours first, KubeSpawner's bundled ones after).
"""

from __future__ import annotations

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader


def render_picker(
    template_paths: list[str], profile_list: list[dict], user_options: dict, binder: dict
) -> str:
    environment = Environment(
        loader=ChoiceLoader([FileSystemLoader(template_paths), PackageLoader("kubespawner", "templates")]),
        autoescape=True,
    )
    # Profiles are shown in the admins' order: `tojson` must not sort their keys.
    environment.policies["json.dumps_kwargs"] = {"sort_keys": False}
    return environment.get_template("form.html").render(
        profile_list=profile_list, user_options=user_options, binder=binder
    )
