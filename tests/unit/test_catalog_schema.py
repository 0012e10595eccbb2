"""The published JSON Schema: valid Draft 2020-12, closed everywhere, documented, shipped in the package."""

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from cern_spawner.catalog import SCHEMA_PATH

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = ROOT / "profiles" / "schema.json"


def subschemas(node, where="#"):
    """Every schema object in the document, with a JSON-pointer-like location."""
    if isinstance(node, dict):
        if "type" in node or "properties" in node or "$ref" in node or "oneOf" in node:
            yield where, node
        for key, value in node.items():
            yield from subschemas(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from subschemas(value, f"{where}/{index}")


SCHEMA = json.loads(PUBLISHED.read_text())
OBJECTS = [(where, node) for where, node in subschemas(SCHEMA) if node.get("type") == "object"]
PROPERTIES = [
    (f"{where}/properties/{name}", prop)
    for where, node in subschemas(SCHEMA)
    for name, prop in node.get("properties", {}).items()
]


def test_published_schema_is_the_package_schema():
    assert PUBLISHED.is_symlink()
    assert PUBLISHED.resolve() == SCHEMA_PATH.resolve()


def test_schema_is_valid_draft_2020_12():
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("where, node", OBJECTS, ids=[where for where, _ in OBJECTS])
def test_every_object_is_closed(where, node):
    # Records are closed with `false`; maps keyed by name (node_groups, env, image_choices) constrain
    # both their keys and their values.
    if "properties" in node or "additionalProperties" not in node or node["additionalProperties"] is False:
        assert node.get("additionalProperties") is False
    else:
        assert isinstance(node["additionalProperties"], dict) and "propertyNames" in node


@pytest.mark.parametrize("where, prop", PROPERTIES, ids=[where for where, _ in PROPERTIES])
def test_every_property_is_described(where, prop):
    assert prop.get("description", "").strip()


def test_default_yaml_validates_against_the_published_schema():
    catalog = yaml.safe_load((ROOT / "profiles" / "default.yaml").read_text())
    assert list(Draft202012Validator(SCHEMA).iter_errors(catalog)) == []


def test_default_yaml_points_editors_at_the_schema():
    first_line = (ROOT / "profiles" / "default.yaml").read_text().splitlines()[0]
    assert first_line == "# yaml-language-server: $schema=schema.json"
