"""`cern-spawner doctor`: the hub's configuration checked against the live world.

Each check is a plain async function of explicit inputs returning a `Result` (name, ok, detail,
fix); `plan` picks the checks the settings call for, `run_checks` gives each one timeout, `report`
prints the table or JSON. Operator guide: docs/operator/doctor.md.
"""

from .plan import Clients, examine
from .result import Check, Result, run_checks
from .settings import DoctorSettings, from_config, load_config_file

__all__ = [
    "Check",
    "Clients",
    "DoctorSettings",
    "Result",
    "examine",
    "from_config",
    "load_config_file",
    "run_checks",
]
