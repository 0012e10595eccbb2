"""GPU quotas per role: limits from the catalog's `quotas:` section, GPU sessions accounted in the
hub's database, and the decision to start a GPU server or refuse it (docs/admin/quotas.md).

- policy.py: the catalog section as frozen limits, and which limits apply to a user (pure);
- usage.py: GPU-hours over a rolling window and when they free (pure, clock injected);
- decision.py: start or refuse, and the words for the refusal and the picker's card (pure);
- ledger.py: the sessions and admins' overrides, in tables of ours in the hub's database;
- hooks.py: what CERNSpawner calls at a start's check, a start and a stop;
- handlers.py: /hub/api/cern/quota/<user> (read: the user or an admin; change: admins only);
- metrics.py: GPU-hours and refusals per quota role, on /hub/metrics.
"""

from .decision import Verdict, decide
from .policy import Limits, Override, QuotaPolicy, effective_limits, policy_of
from .usage import GpuSession, frees_at, gpu_seconds, running_gpus

__all__ = [
    "GpuSession",
    "Limits",
    "Override",
    "QuotaPolicy",
    "Verdict",
    "decide",
    "effective_limits",
    "frees_at",
    "gpu_seconds",
    "policy_of",
    "running_gpus",
]
