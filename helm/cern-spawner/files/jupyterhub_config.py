# The hub's configuration in the cern-spawner Helm chart (rendered into a ConfigMap).
# Settings come from /etc/jupyterhub/settings.json (chart values); every secret is a mounted file
# under /etc/cern-spawner/secrets: none is passed through the environment, which child processes inherit.
# What each setting becomes is cern_spawner.chart_settings (tested on rendered charts), which ends
# with cern_spawner.configure_hub(c): spawner, authenticator, templates, handlers, GPU growth.
import json
from pathlib import Path

from cern_spawner.chart_settings import apply_chart_settings

c = get_config()  # noqa: F821 (provided by JupyterHub)

CONFIG = Path("/etc/jupyterhub")
apply_chart_settings(c, json.loads((CONFIG / "settings.json").read_text()), Path("/etc/cern-spawner/secrets"))

extra = CONFIG / "extra_config.py"
if extra.is_file() and extra.read_text().strip():
    load_subconfig(str(extra))  # noqa: F821 (provided by traitlets)
