"""Prometheus metrics of GPU quotas, per quota role (the listed role whose limits applied, or
"default"), served with JupyterHub's own on /hub/metrics."""

from __future__ import annotations

from prometheus_client import Counter

GPU_HOURS = Counter(
    "cern_spawner_quota_gpu_hours",
    "GPU-hours of GPU servers that stopped, per quota role (a running server counts when it stops)",
    ["role"],
)
REFUSALS = Counter(
    "cern_spawner_quota_refusals",
    "GPU server starts refused over quota, per quota role and limit (gpus, gpu_hours)",
    ["role", "limit"],
)
