"""Sphinx helpers of cern-spawner's docs: our settings only in the reference, and the metrics table
generated from cern_spawner.metrics (so neither can drift from the code)."""

from __future__ import annotations

import re

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from traitlets import TraitType

OURS = "cern_spawner"
# A glob in a trait's help ("*.yaml", "github.com/cern/*"): help is plain text (also shown by
# `--help-all`), where reStructuredText would read the star as the start of emphasis.
GLOB = re.compile(r'(?<![`\w"])("[^"\s]*\*[^"\s]*"|[^\s`"]*\*[^\s`,;)]*)')


def skip_foreign_traits(app, what, name, obj, skip, options):
    """autodoc-traits lists every config trait, inherited ones too: keep those a cern_spawner class
    defines (or redefines with our default), the rest is in KubeSpawner's and JupyterHub's docs."""
    if isinstance(obj, TraitType) and obj.this_class is not None:
        return None if obj.this_class.__module__.startswith(OURS) else True
    return None


def globs_as_literals(app, what, name, obj, options, lines):
    if isinstance(obj, TraitType):
        lines[:] = [GLOB.sub(r"``\1``", line) for line in lines]


class MetricsTable(SphinxDirective):
    """`{cern-metrics}`: a table of the Prometheus metrics of cern-spawner (`metrics.every_metric`)."""

    def run(self) -> list[nodes.Node]:
        from cern_spawner import metrics

        rows = []
        for value in metrics.every_metric():  # metrics.py's and those other packages declare
            (family,) = value.describe()
            # The label names are only kept privately by prometheus_client; the docs build fails loudly
            # (AttributeError) if that changes, rather than listing metrics without their labels.
            labels = ", ".join(f"`{label}`" for label in value._labelnames)
            exposed = f"{family.name}_total" if family.type == "counter" else family.name
            rows.append((exposed, family.type, labels or "—", family.documentation))
        lines = [
            "| metric | type | labels | what it counts |",
            "|---|---|---|---|",
            *(f"| `{name}` | {kind} | {labels} | {text} |" for name, kind, labels, text in sorted(rows)),
        ]
        container = nodes.container()
        source = StringList(lines, source="cern_spawner/metrics.py")
        self.state.nested_parse(source, self.content_offset, container)
        return container.children


def setup(app):
    app.connect("autodoc-skip-member", skip_foreign_traits)
    app.connect("autodoc-process-docstring", globs_as_literals)
    app.add_directive("cern-metrics", MetricsTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
