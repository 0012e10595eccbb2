"""The Grafana dashboard and the operator's metrics page against the metrics registry: nothing
queried or documented that the hub does not export, and no metric left out."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path

import pytest
from jupyterhub import metrics as jupyterhub_metrics
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

import cern_spawner
from cern_spawner import metrics

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboards" / "grafana-cern-spawner.json"
DOC = ROOT / "docs" / "operator" / "metrics.md"
NAME = re.compile(r"\b(?:cern_spawner|jupyterhub)_[a-z0-9_]*[a-z0-9]")
JUPYTERHUB = [m for m in vars(jupyterhub_metrics).values() if isinstance(m, MetricWrapperBase)]


def exported() -> set[str]:
    return metrics.exposed_names(metrics.every_metric()) | metrics.exposed_names(JUPYTERHUB)


def queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("expr", "definition") and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(dashboard)
    return found


def family_names() -> set[str]:
    """Each of our metrics as an operator writes it: counters with _total."""
    return {
        family.name + ("_total" if family.type == "counter" else "")
        for metric in metrics.every_metric()
        for family in metric.describe()
    }


def test_every_cern_spawner_metric_of_the_registry_is_known():
    """A metric declared in a module outside `metrics.ELSEWHERE` would be left out of the docs."""
    for module in pkgutil.walk_packages(cern_spawner.__path__, "cern_spawner."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    registered = {family.name for family in REGISTRY.collect() if family.name.startswith("cern_spawner_")}
    known = {family.name for metric in metrics.every_metric() for family in metric.describe()}
    assert registered == known, f"add to cern_spawner.metrics.ELSEWHERE: {sorted(registered - known)}"


def test_the_dashboard_queries_only_metrics_the_hub_exports():
    named = {name for query in queries() for name in NAME.findall(query)}
    assert named, "no query names a metric"
    assert named <= exported(), sorted(named - exported())


def test_the_dashboard_shows_every_cern_spawner_metric():
    text = " ".join(queries())
    missing = [name for name in family_names() if name.removesuffix("_total") not in text]
    assert not missing, missing


def test_every_panel_says_what_it_shows():
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels and all(p["title"] and p.get("description") for p in panels)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_the_operator_page_documents_every_metric():
    text = DOC.read_text()
    missing = sorted(name for name in family_names() if f"`{name}`" not in text)
    assert not missing, f"add to {DOC.relative_to(ROOT)}: {missing}"


def test_the_operator_page_names_no_metric_the_hub_lacks():
    text = DOC.read_text()
    named = {name for name in NAME.findall(text) if not name.startswith("jupyterhub_config")}
    unknown = named - exported() - family_names()
    assert not unknown, sorted(unknown)
