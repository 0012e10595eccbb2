"""The chart's README is generated from its values schema (python -m sandbox.chart_readme): it is never
stale, and every value the chart reads is described."""

import json

import pytest

from sandbox import chart_readme

pytestmark = pytest.mark.unit


def test_every_value_has_a_description():
    assert chart_readme.undescribed() == [], "describe these in helm/cern-spawner/values.schema.json"


def test_readme_is_generated_from_the_schema():
    assert chart_readme.README.read_text(encoding="utf-8") == chart_readme.render(), (
        "helm/cern-spawner/README.md is stale: run python -m sandbox.chart_readme"
    )


PROPERTIES = {
    "a": {"type": "string", "description": "A value."},
    "b": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"c": {"type": "integer"}, "d": {"$ref": "#/definitions/d"}},
    },
}


# schema properties, values.yaml, undescribed leaves, lines the README must hold
CASES = [
    (
        "nested-and-ref",
        PROPERTIES,
        "a: x\nb: {c: 1, d: No}\n",
        ["b.c"],
        ['| `a` | string | `"x"` | A value. |'],
    ),
    (
        "enum-from-definition",
        {"d": {"$ref": "#/definitions/d"}},
        "d: Yes\n",
        [],
        ['| `d` | `Yes` \\| `No` | `"Yes"` | Yes or No. |'],
    ),
    (
        "own-description-wins",
        {"d": {"$ref": "#/definitions/d", "description": "Mine."}},
        "",
        [],
        ["| `d` | `Yes` \\| `No` |  | Mine. |"],
    ),
]


@pytest.mark.parametrize("name, properties, values, missing, lines", CASES, ids=[c[0] for c in CASES])
def test_generator(tmp_path, name, properties, values, missing, lines):
    schema = {
        "properties": properties,
        "definitions": {"d": {"enum": ["Yes", "No"], "description": "Yes or No."}},
    }
    (tmp_path / "values.schema.json").write_text(json.dumps(schema))
    (tmp_path / "values.yaml").write_text(values.replace("Yes", '"Yes"').replace("No}", '"No"}'))
    assert chart_readme.undescribed(tmp_path) == missing
    text = chart_readme.render(tmp_path)
    for line in lines:
        assert line in text.splitlines(), text
