"""Hub-side web pieces of cern-spawner: JSON handlers, the profile picker and the progress page."""

from pathlib import Path

_TEMPLATES = Path(__file__).parent / "templates"
# KubeSpawner.additional_profile_form_template_paths: holds the picker's form.html.
PICKER_TEMPLATE_DIR = str(_TEMPLATES / "picker")
# JupyterHub.template_paths: holds spawn_pending.html, which extends JupyterHub's own page.html.
HUB_TEMPLATE_DIR = str(_TEMPLATES / "hub")

__all__ = ["HUB_TEMPLATE_DIR", "PICKER_TEMPLATE_DIR"]
