"""Broken catalogs: every problem reported, each with its exact file, line, path, message and hint."""

import pytest

from cern_spawner.catalog import CatalogError, Problem, load_catalog
from cern_spawner.catalog.quantities import MEMORY_HINT
from tests.unit.catalog_samples import BASE, edited, problems_of, write

pytestmark = pytest.mark.unit

# name, files, expected problems: (file, line, path, message, hint); "{dir}" stands for the directory.
BROKEN = [
    (
        "unknown-key",
        {"a.yaml": edited("    default: true", "    defualt: true")},
        [("a.yaml", 13, "profiles[0].defualt", "unknown key 'defualt'", "did you mean 'default'?")],
    ),
    (
        "unknown-node-group",
        {"a.yaml": edited("node_group: gpu-v100", "node_group: gpu-a100")},
        [
            (
                "a.yaml",
                20,
                "profiles[1].node_group",
                "unknown node group 'gpu-a100'",
                "did you mean 'gpu-v100'?",
            )
        ],
    ),
    (
        "duplicate-slug",
        {"a.yaml": edited("slug: gpu-1", "slug: shared-2g")},
        [
            (
                "a.yaml",
                14,
                "profiles[1].slug",
                "duplicate slug 'shared-2g', also at {dir}/a.yaml:7",
                "slugs must be unique",
            )
        ],
    ),
    (
        "two-defaults",
        {"a.yaml": BASE + "    default: true\n"},
        [
            (
                "a.yaml",
                21,
                "profiles[1].default",
                "'gpu-1' is a second default: 'shared-2g' at {dir}/a.yaml:13 already is",
                "set default: true on one profile only",
            )
        ],
    ),
    (
        "guarantee-above-limit",
        {"a.yaml": edited("guarantee: 0.2, limit: 1", "guarantee: 2, limit: 1")},
        [
            (
                "a.yaml",
                10,
                "profiles[0].cpu.guarantee",
                "guarantee 2 is more than limit 1",
                "a pod cannot be guaranteed more than it may use",
            )
        ],
    ),
    (
        "bad-quantity",
        {"a.yaml": edited("memory: 4G", "memory: 2 GB")},
        [("a.yaml", 18, "profiles[1].memory", "'2 GB' is not a memory quantity", MEMORY_HINT)],
    ),
    (
        "gpus-on-cpu-group",
        {"a.yaml": edited("node_group: gpu-v100", "node_group: default-worker")},
        [
            (
                "a.yaml",
                19,
                "profiles[1].gpus",
                "gpu-1 asks for 1 GPU but node group 'default-worker' has none",
                "pick a node group with gpu: (gpu-v100), or give 'default-worker' a gpu: entry",
            )
        ],
    ),
    (
        "gpus-above-per-node",
        {"a.yaml": edited("gpus: 1", "gpus: 8")},
        [
            (
                "a.yaml",
                19,
                "profiles[1].gpus",
                "gpu-1 asks for 8 GPUs but a gpu-v100 node has 4",
                "ask for at most 4: a pod runs on one node",
            )
        ],
    ),
    (
        "broken-yaml",
        {"a.yaml": edited("    kind: dedicated", "   kind: dedicated")},
        [
            (
                "a.yaml",
                16,
                "",
                "not valid YAML: while parsing a block collection (line 7), "
                "expected <block end>, but found '<block mapping start>'",
                "check the indentation of this line",
            )
        ],
    ),
    (
        "node-group-in-two-files",
        {"a.yaml": BASE, "b.yaml": "node_groups:\n  other: {}\n  gpu-v100: {gpu: {per_node: 8}}\n"},
        [
            (
                "b.yaml",
                3,
                "node_groups.gpu-v100",
                "node group 'gpu-v100' is also defined in {dir}/a.yaml:3",
                "define each node group in one file only",
            )
        ],
    ),
    (
        "dedicated-guarantee-below-limit",
        {"a.yaml": edited("    cpu: 2", "    cpu: {guarantee: 1, limit: 2}")},
        [
            (
                "a.yaml",
                17,
                "profiles[1].cpu",
                "dedicated profiles have requests = limits",
                "write one value (cpu: 2), or use kind: shared",
            )
        ],
    ),
    (
        "shared-with-gpus",
        {"a.yaml": edited("kind: dedicated", "kind: shared")},
        [("a.yaml", 19, "profiles[1].gpus", "shared profiles cannot hold GPUs", "use kind: dedicated")],
    ),
    (
        "cpu-profile-on-gpu-group",
        {"a.yaml": edited("    gpus: 1\n", "")},
        [
            (
                "a.yaml",
                19,
                "profiles[1].node_group",
                "gpu-1 asks for no GPUs but 'gpu-v100' is a GPU node group",
                "set gpus: 1 or more, or pick a node group without gpu:",
            )
        ],
    ),
    (
        "duplicate-key",
        {"a.yaml": BASE + "    image_choices:\n" + "      a: {display_name: A, image: a}\n" * 2},
        [
            (
                "a.yaml",
                23,
                "profiles[1].image_choices.a",
                "duplicate key 'a'",
                "it is also at line 22; YAML keeps only the last one",
            )
        ],
    ),
    (
        "enum-typo",
        {"a.yaml": edited("effect: NoSchedule", "effect: NoSchedul")},
        [
            (
                "a.yaml",
                5,
                "node_groups.gpu-v100.taint.effect",
                "'NoSchedul' is not one of NoSchedule, PreferNoSchedule, NoExecute",
                "did you mean 'NoSchedule'?",
            )
        ],
    ),
    (
        "unquoted-boolean",
        {"a.yaml": BASE + "    env: {NVIDIA_VISIBLE_DEVICES: yes}\n"},
        [
            (
                "a.yaml",
                21,
                "profiles[1].env.NVIDIA_VISIBLE_DEVICES",
                "must be a string or a whole number, not a boolean",
                "quote it: YAML reads yes/no/on/off as booleans and 1.10 as a number",
            )
        ],
    ),
    (
        "missing-key-in-range",
        {"a.yaml": edited("{guarantee: 1G, limit: 2G}", "{guarantee: 1G, limt: 2G}")},
        [
            (
                "a.yaml",
                11,
                "profiles[0].memory",
                "missing key 'limit'",
                "Most memory the pod may use (the limit); beyond it the notebook is killed.",
            ),
            ("a.yaml", 11, "profiles[0].memory.limt", "unknown key 'limt'", "did you mean 'limit'?"),
        ],
    ),
    (
        "bad-name",
        {"a.yaml": edited("slug: gpu-1", "slug: GPU 1")},
        [
            (
                "a.yaml",
                14,
                "profiles[1].slug",
                "'GPU 1' is not a valid name here",
                "Identifier of the profile, unique in the catalog (used in the REST API and as a label "
                "value): lower-case letters, digits and '-', at most 63 characters.",
            )
        ],
    ),
    (
        "scaling-min-above-max",
        {
            "a.yaml": edited(
                "    gpu: {per_node: 4}\n",
                "    gpu: {per_node: 4}\n    scaling: {backend: magnum, "
                "cluster: c, min_nodes: 3, max_nodes: 2}\n",
            )
        },
        [("a.yaml", 5, "node_groups.gpu-v100.scaling.min_nodes", "min_nodes 3 is more than max_nodes 2", "")],
    ),
    (
        "scaling-without-ceiling",
        {
            "a.yaml": edited(
                "    gpu: {per_node: 4}\n",
                "    gpu: {per_node: 4}\n    scaling: {backend: magnum, cluster: c}\n",
            )
        },
        [
            (
                "a.yaml",
                5,
                "node_groups.gpu-v100.scaling",
                "missing key 'max_nodes'",
                "Never grow beyond this many nodes (required: the hub's ceiling on what it may spend on "
                "GPU nodes; the hub raises the cloud's own maximum up to it when that is lower).",
            )
        ],
    ),
    (
        "top-level-list",
        {"a.yaml": "- slug: x\n"},
        [("a.yaml", 1, "", "must be a mapping with node_groups and/or profiles, not a list", "")],
    ),
]


@pytest.mark.parametrize("files, expected", [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
def test_broken_catalog(tmp_path, files, expected):
    assert problems_of(tmp_path, files) == [
        Problem(str(tmp_path / file), line, path, message.replace("{dir}", str(tmp_path)), hint)
        for file, line, path, message, hint in expected
    ]


def test_every_problem_is_reported_not_just_the_first(tmp_path):
    text = (
        edited("gpus: 1", "gpus: 8")
        .replace("memory: 4G", "memory: 2 GB")
        .replace("slug: gpu-1", "slug: shared-2g")
    )
    problems = problems_of(tmp_path, {"a.yaml": text})
    assert [(p.line, p.path) for p in problems] == [
        (14, "profiles[1].slug"),
        (18, "profiles[1].memory"),
        (19, "profiles[1].gpus"),
    ]


@pytest.mark.parametrize(
    "paths, message",
    [
        (["missing"], "no such file or directory"),
        (["empty-dir"], "no *.yaml files in this directory"),
    ],
    ids=["missing-path", "directory-without-yaml"],
)
def test_unusable_paths(tmp_path, paths, message):
    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(CatalogError) as raised:
        load_catalog([tmp_path / p for p in paths])
    assert raised.value.problems == [Problem(str(tmp_path / paths[0]), None, "", message)]


def test_a_catalog_without_profiles_is_refused(tmp_path):
    with pytest.raises(CatalogError) as raised:
        load_catalog([write(tmp_path, {"a.yaml": BASE.partition("profiles:")[0]})])
    assert [(p.path, p.message) for p in raised.value.problems] == [
        ("profiles", "the catalog has no profiles")
    ]


@pytest.mark.parametrize(
    "problem, text",
    [
        (Problem("a.yaml", 3, "profiles[0].x", "bad"), "a.yaml:3: profiles[0].x: bad"),
        (Problem("a.yaml", 3, "p", "bad", "fix it"), "a.yaml:3: p: bad — fix it"),
        (Problem("dir", None, "", "gone"), "dir: gone"),
    ],
    ids=["plain", "with-hint", "no-line-no-path"],
)
def test_problem_text(problem, text):
    assert str(problem) == text


def test_catalog_error_lists_problems_one_per_line():
    error = CatalogError([Problem("a", 1, "p", "one"), Problem("b", 2, "q", "two", "hint")])
    assert str(error) == "a:1: p: one\nb:2: q: two — hint"
    assert len(error.problems) == 2
