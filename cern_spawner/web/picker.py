"""Render the profile picker (templates/picker/form.html) with everything it shows.

KubeSpawner's own renderer passes only `profile_list` and `user_options`; the picker also needs the
repository-launch section's `binder` variable, so CERNSpawner renders the template itself, from the
same template paths (ours first, KubeSpawner's bundled ones after).

KubeSpawner builds a new Jinja environment at every render, so it parses and compiles the template
each time (most of its ~10 ms). Here one environment per set of template paths lives for the
process: the template is compiled once, and Jinja still recompiles it when its file changes
(`auto_reload`, a stat per render).
"""

from __future__ import annotations

from functools import lru_cache

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader

from ..catalog.to_kubespawner import ProfileEntry

_DICT_TYPES = (dict, ProfileEntry)
_DICT_ATTRIBUTES = frozenset(dir(ProfileEntry))  # dict's own, and ProfileEntry's
_MISSING = object()


class _PickerEnvironment(Environment):
    """Jinja, with `mapping.name` looked up without exceptions when the mapping is a plain dict.

    Jinja's `obj.name` tries `getattr(obj, name)` and then `obj[name]`: on a dict, every key costs
    a caught AttributeError, and a missing one a KeyError too. The picker reads ~30 keys per profile
    (several absent, e.g. `cern_availability`), most of a render. For a dict and a name that is not
    one of dict's attributes, `getattr` can only fail, so the key is read directly: the result is
    the same value, or the same Undefined.
    """

    def getattr(self, obj, attribute):
        if type(obj) in _DICT_TYPES and attribute not in _DICT_ATTRIBUTES:
            value = obj.get(attribute, _MISSING)
            return self.undefined(obj=obj, name=attribute) if value is _MISSING else value
        return super().getattr(obj, attribute)


@lru_cache(maxsize=16)  # one per distinct template path list; a hub has one or two
def _environment(template_paths: tuple[str, ...]) -> Environment:
    environment = _PickerEnvironment(
        loader=ChoiceLoader([FileSystemLoader(template_paths), PackageLoader("kubespawner", "templates")]),
        autoescape=True,
        auto_reload=True,
    )
    # Profiles are shown in the admins' order: `tojson` must not sort their keys.
    environment.policies["json.dumps_kwargs"] = {"sort_keys": False}
    return environment


def render_picker(
    template_paths: list[str], profile_list: list[dict], user_options: dict, binder: dict
) -> str:
    template = _environment(tuple(template_paths)).get_template("form.html")
    return template.render(profile_list=profile_list, user_options=user_options, binder=binder)
