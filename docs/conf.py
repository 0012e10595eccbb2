"""Sphinx configuration of cern-spawner's docs site (`make docs`): MyST Markdown, JupyterHub's theme
(pydata-sphinx-theme), the settings reference generated from the traits (autodoc-traits)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

project = "cern-spawner"
author = "The cern-spawner developers"
copyright = "2026, The cern-spawner developers"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "autodoc_traits",
    "cern_docs",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "README.md"]

# MyST: `{eval-rst}` for autodoc, `:::` fences, and anchors for ## and ### so pages can link sections.
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# The reference documents our settings; KubeSpawner's, Spawner's and OAuthenticator's are in their
# own docs (see cern_docs.skip_foreign_traits).
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"
# The settings page's outline lists each setting under its class, not the class twice.
toc_object_entries_show_parents = "hide"

html_theme = "pydata_sphinx_theme"
html_title = "cern-spawner"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path: list[str] = []
