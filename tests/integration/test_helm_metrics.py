"""The chart's optional Prometheus scraping, checked on `helm template` output (no cluster): the
ServiceMonitor selects the hub's Service alone and presents the token of a hub service that holds
only read:metrics, mounted as a file; the NetworkPolicy admits the configured scrapers."""

from __future__ import annotations

import pytest

from tests.integration.chart import DEFAULT_VALUES, find, names, render, resolve_helm
from tests.integration.test_helm import run_hub_config, settings_of

pytestmark = pytest.mark.integration

MONITOR = [
    "--set",
    "metrics.serviceMonitor.enabled=true",
    "--set",
    "metrics.serviceMonitor.labels.release=kps",
]


@pytest.fixture(scope="module")
def helm():
    return resolve_helm()


def hub_mounts(docs) -> dict[str, str]:
    pod = find(docs, "Deployment", "hub-cern-spawner-hub")["spec"]["template"]["spec"]
    return {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}


def test_off_by_default(helm):
    docs = render(helm, DEFAULT_VALUES)
    assert not [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert "hub-cern-spawner-metrics" not in names(docs, "Secret")
    assert "metrics" not in hub_mounts(docs)
    assert settings_of(docs)["metricsScraper"] is False


def test_the_service_monitor_scrapes_the_hub_with_a_read_metrics_token(helm, tmp_path):
    docs = render(helm, DEFAULT_VALUES, "hub", *MONITOR)
    monitor = find(docs, "ServiceMonitor", "hub-cern-spawner-hub")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [d for d in docs if d["kind"] == "Service"]
    selected = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
    assert [s["metadata"]["name"] for s in selected] == ["hub-cern-spawner-hub"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in selected[0]["spec"]["ports"]}
    assert endpoint["path"] == "/hub/metrics"
    assert endpoint["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": "hub-cern-spawner-metrics", "key": "token"},
    }
    assert len(find(docs, "Secret", "hub-cern-spawner-metrics")["data"]["token"]) > 40
    assert hub_mounts(docs)["metrics"] == "/etc/cern-spawner/secrets/metrics"
    config, secrets = run_hub_config(docs, tmp_path)
    token = (secrets / "metrics" / "token").read_text()
    assert {"name": "metrics-scraper", "api_token": token} in config.JupyterHub.services
    (role,) = [r for r in config.JupyterHub.load_roles if r["name"] == "metrics-scraper"]
    assert role == {"name": "metrics-scraper", "scopes": ["read:metrics"], "services": ["metrics-scraper"]}
    hub = find(docs, "Deployment", "hub-cern-spawner-hub")["spec"]["template"]["spec"]["containers"][0]
    assert not [e for e in hub.get("env", []) if "token" in str(e).lower()]  # a file, never the environment


def test_an_existing_token_secret_is_mounted_not_generated(helm, tmp_path):
    docs = render(helm, DEFAULT_VALUES, "hub", *MONITOR, "--set", "metrics.token.existingSecret=prom-token")
    assert "hub-cern-spawner-metrics" not in names(docs, "Secret")
    credentials = find(docs, "ServiceMonitor", "hub-cern-spawner-hub")["spec"]["endpoints"][0][
        "authorization"
    ]
    assert credentials["credentials"]["name"] == "prom-token"
    config, _ = run_hub_config(docs, tmp_path, existing={"prom-token": {"token": "from-the-operator"}})
    assert {"name": "metrics-scraper", "api_token": "from-the-operator"} in config.JupyterHub.services


def test_scrapers_may_reach_the_hub_port_through_the_network_policy(helm):
    peer = "metrics.scrapers[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=monitoring"
    docs = render(helm, DEFAULT_VALUES, "hub", "--set", peer)
    ingress = find(docs, "NetworkPolicy", "hub-cern-spawner-hub")["spec"]["ingress"]
    peers = [rule["from"] for rule in ingress if rule["ports"] == [{"port": 8081, "protocol": "TCP"}]]
    expected = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    assert [expected] in peers
