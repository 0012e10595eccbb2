"""One configurable-http-proxy, tested: the chart deploys the release the tests run.

The tests run the npm package pinned in package.json / package-lock.json (`npm ci`); the chart's
proxy image is quay.io/jupyterhub/configurable-http-proxy, tagged with the same version number.
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

PACKAGE = "configurable-http-proxy"


def chart_tag() -> str:
    values = yaml.safe_load((ROOT / "helm" / "cern-spawner" / "values.yaml").read_text())
    assert values["proxy"]["image"]["repository"] == f"quay.io/jupyterhub/{PACKAGE}"
    return values["proxy"]["image"]["tag"]


def locked() -> str:
    lock = json.loads((ROOT / "package-lock.json").read_text())
    return lock["packages"][f"node_modules/{PACKAGE}"]["version"]


def declared() -> str:
    return json.loads((ROOT / "package.json").read_text())["dependencies"][PACKAGE]


def locks_root() -> str:
    return json.loads((ROOT / "package-lock.json").read_text())["packages"][""]["dependencies"][PACKAGE]


@pytest.mark.parametrize(
    "source",
    [locked, declared, locks_root],
    ids=["package-lock-installs", "package-json-pins-exactly", "package-lock-root"],
)
def test_chart_proxy_image_is_the_tested_release(source):
    assert source() == chart_tag(), (
        f"helm/cern-spawner/values.yaml proxy.image.tag is {chart_tag()!r} but {source.__name__} says "
        f"{source()!r}: bump both together (npm install {PACKAGE}@<version> --save-exact, then the tag)"
    )
