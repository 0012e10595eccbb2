"""Form render and load_user_options: CERNSpawner against KubeSpawner's own, misses and hits apart.

Both spawners get the same profiles in the same process: CERNSpawner reads a catalog of N profiles
(5, 200, 1000) gated by 50 roles, of which the user holds 5; KubeSpawner gets the equivalent static
`profile_list` (the profiles that user is offered, as plain dicts) and renders its form with its own
`_render_options_form`, which has no cache: every call is a full render. No cluster is involved:
the work measured is the hub's.

What is timed, per call:
- render, KubeSpawner: `_render_options_form(profile_list)`.
- render, CERNSpawner `miss`: the first form after a catalog edit (no offered list, no form kept);
  `miss_new_choice`: a user's first form with a new saved choice or role mix (the offered list is
  kept, the form is not); `hit`: a form already rendered; `cold`: the first form after the hub
  starts (the Jinja template is compiled too), which KubeSpawner pays at every render.
- load_user_options: what a start runs with the options, JupyterHub's `apply_user_options` hook
  (CERNSpawner's checks; none on KubeSpawner) then `load_user_options()`; `miss`: the first start
  after a catalog edit.

Every case is timed in each round, the order of all cases reversed every other round, so neither
side always runs first; a sample is the mean of enough calls to last ~40 ms. Reported per case:
median and min over rounds of CPU time (process time: other load on the shared machine does not
count) and wall time, in ms per call; ratios are of CPU medians. The machine's load averages are
recorded beside each size.

    .venv/bin/python benchmarks/form_render.py [--rounds 9] [--sizes 5,200,1000]

Writes benchmarks/results/form_render.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import hubs  # noqa: E402  (benchmarks/hubs.py: machine, load and round order, as every benchmark)
import kubespawner.spawner  # noqa: E402
from kubespawner import KubeSpawner  # noqa: E402
from traitlets.config import Config  # noqa: E402

from cern_spawner import CERNSpawner  # noqa: E402
from cern_spawner.catalog import allowed_profiles, load_catalog, to_profile_list  # noqa: E402
from cern_spawner.web import picker  # noqa: E402

ROLES = [f"role-{index}" for index in range(50)]
USER_ROLES = set(ROLES[:5])
SAMPLE_SECONDS = 0.04
# Building a spawner loads a kube config; nothing here talks to an API server.
kubespawner.spawner.load_config = lambda **kwargs: None

Call = Callable[[], Awaitable[None]]


def catalog_yaml(profiles: int) -> str:
    lines = [
        "node_groups:",
        "  default-worker: {zones: [a, b]}",
        "  gpu-v100: {gpu: {per_node: 4}, taint: {key: nvidia.com/gpu, effect: NoSchedule}}",
        "profiles:",
    ]
    for index in range(profiles):
        gpu = index % 4 == 3
        lines += [
            f"  - slug: p{index}",
            f'    display_name: "Profile {index}"',
            f"    kind: {'dedicated' if gpu else 'shared'}",
            "    cpu: 2" if gpu else "    cpu: {guarantee: 0.5, limit: 2}",
            "    memory: 4G" if gpu else "    memory: {guarantee: 1G, limit: 4G}",
            f"    node_group: {'gpu-v100' if gpu else 'default-worker'}",
        ]
        if gpu:
            lines.append("    gpus: 1")
        if index % 2:  # half the profiles are role-gated, to one of 50 roles
            lines.append(f"    allowed_roles: [{ROLES[index % len(ROLES)]}]")
        if index % 5 == 1:  # some offer an image choice (KubeSpawner's profile_options)
            lines += [
                "    image_choices:",
                "      default: {display_name: Default, image: 'jupyter/base:1'}",
                "      tf: {display_name: TensorFlow, image: 'jupyter/tf:1'}",
            ]
        if index == 0:
            lines.append("    default: true")
    return "\n".join(lines) + "\n"


def mock_user(spawner):
    spawner.user.groups = [SimpleNamespace(name=role) for role in sorted(USER_ROLES)]
    spawner.user.admin = False
    return spawner


def forget_forms(catalog_edit: bool) -> None:
    CERNSpawner._form_cache.clear()
    if catalog_edit:
        CERNSpawner._profile_list_cache.clear()


async def sample(fn: Call, calls: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per call, the mean over `calls` calls."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        await fn()
    return (time.process_time() - cpu) / calls * 1000, (time.perf_counter() - wall) / calls * 1000


async def calls_for(fn: Call) -> int:
    """Enough calls for a sample of ~SAMPLE_SECONDS (at least 3), after a warm-up call."""
    await fn()
    start = time.perf_counter()
    await fn()
    return max(3, int(SAMPLE_SECONDS / max(time.perf_counter() - start, 1e-6)))


async def compare(cases: dict[str, Call], rounds: int) -> dict:
    calls = {name: await calls_for(fn) for name, fn in cases.items()}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    wall: dict[str, list[float]] = {name: [] for name in cases}
    for round_index in range(rounds):
        for name in hubs.alternating(list(cases), round_index):
            c, w = await sample(cases[name], calls[name])
            cpu[name].append(c)
            wall[name].append(w)

    def summary(values: list[float]) -> dict:
        return {"median": round(statistics.median(values), 4), "min": round(min(values), 4)}

    return {
        name: {"cpu_ms": summary(cpu[name]), "wall_ms": summary(wall[name]), "calls_per_sample": calls[name]}
        for name in cases
    }


def ratios(result: dict, cases: list[str]) -> dict:
    anchor = result["KubeSpawner"]["cpu_ms"]["median"]
    return {f"{case}_over_kubespawner": round(result[case]["cpu_ms"]["median"] / anchor, 3) for case in cases}


async def measure(profiles: int, scratch: Path, rounds: int) -> dict:
    directory = scratch / f"catalog-{profiles}"
    directory.mkdir()
    (directory / "profiles.yaml").write_text(catalog_yaml(profiles))
    catalog = load_catalog([directory])
    # Plain dicts, as a KubeSpawner deployment's YAML config gives them.
    offered = json.loads(json.dumps(to_profile_list(catalog, allowed_profiles(catalog, USER_ROLES))))

    config = Config()
    config.CERNSpawner.profiles_path = [str(directory)]
    cern = mock_user(CERNSpawner(_mock=True, config=config))
    static = Config()
    static.KubeSpawner.profile_list = offered
    plain = KubeSpawner(_mock=True, config=static)
    # A saved choice of a non-default profile with an image option: the form preselects both.
    chosen = next(entry for entry in offered if entry.get("profile_options"))
    choice = {"profile": chosen["slug"], "image": "tf"}
    cern.user_options = dict(choice)
    plain.user_options = dict(choice)

    async def plain_render():
        plain._render_options_form(plain.profile_list)

    async def cern_render():
        await cern._render_options_form_dynamically(cern)

    async def cern_render_miss():
        forget_forms(catalog_edit=True)
        await cern_render()

    async def cern_render_new_choice():
        forget_forms(catalog_edit=False)
        await cern_render()

    async def cern_render_cold():
        if hasattr(picker, "_environment"):  # (absent before the environment was kept)
            picker._environment.cache_clear()
        forget_forms(catalog_edit=True)
        await cern_render()

    async def plain_load():
        plain.user_options = dict(choice)
        await plain._run_apply_user_options(plain.user_options)  # none configured: a no-op
        await plain.load_user_options()

    async def cern_load():
        cern.user_options = dict(choice)
        await cern._run_apply_user_options(cern.user_options)
        await cern.load_user_options()

    async def cern_load_miss():
        forget_forms(catalog_edit=True)
        await cern_load()

    loadavg_before = hubs.load()
    render = await compare(
        {
            "KubeSpawner": plain_render,
            "CERNSpawner_miss": cern_render_miss,
            "CERNSpawner_miss_new_choice": cern_render_new_choice,
            "CERNSpawner_hit": cern_render,
            "CERNSpawner_cold": cern_render_cold,
        },
        rounds,
    )
    render["ratio_cpu_median"] = ratios(
        render, ["CERNSpawner_miss", "CERNSpawner_miss_new_choice", "CERNSpawner_hit"]
    )
    load_options = await compare(
        {"KubeSpawner": plain_load, "CERNSpawner_miss": cern_load_miss, "CERNSpawner_hit": cern_load}, rounds
    )
    load_options["ratio_cpu_median"] = ratios(load_options, ["CERNSpawner_miss", "CERNSpawner_hit"])
    return {
        "profiles_in_catalog": profiles,
        "profiles_offered": len(offered),
        "loadavg_1_5_15": {"before": loadavg_before, "after": hubs.load()},
        "render": render,
        "load_user_options": load_options,
    }


async def run_all(sizes: list[int], rounds: int) -> dict:
    began, load_start = time.time(), hubs.load()
    with tempfile.TemporaryDirectory() as scratch:
        runs = [await measure(n, Path(scratch), rounds) for n in sizes]
    results = {
        "benchmark": "form_render",
        "date": datetime.datetime.fromtimestamp(began, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": round(time.time() - began, 1),
        "machine": hubs.machine(loadavg_start=load_start),
        "roles": len(ROLES),
        "user_roles": len(USER_ROLES),
        "rounds": rounds,
        "unit": "ms per call; cpu = process time, wall = perf_counter; median and min over rounds",
        "runs": runs,
    }
    results["report"] = report(runs)
    return results


def report(runs: list[dict]) -> list[dict]:
    """docs/performance.md's tables (benchmarks/report.py renders a results file's `report` key)."""

    def cell(phase: dict, case: str) -> str:
        return f"{phase[case]['cpu_ms']['median']:.2f}"

    def load_cell(run: dict) -> str:
        return " → ".join(" / ".join(map(str, run["loadavg_1_5_15"][k])) for k in ("before", "after"))

    render_rows, load_rows = [], []
    misses = ("CERNSpawner_miss", "CERNSpawner_miss_new_choice", "CERNSpawner_hit")
    for run in runs:
        render, options = run["render"], run["load_user_options"]
        size = f"{run['profiles_in_catalog']} ({run['profiles_offered']} offered)"
        ratio = render["ratio_cpu_median"]["CERNSpawner_miss_over_kubespawner"]
        render_rows.append(
            [size, cell(render, "KubeSpawner"), *(cell(render, case) for case in misses), f"{ratio:.2f}"]
            + [load_cell(run)]
        )
        ratios = options["ratio_cpu_median"]
        load_rows.append(
            [size, *(cell(options, case) for case in ("KubeSpawner", "CERNSpawner_miss", "CERNSpawner_hit"))]
            + [f"{ratios[f'CERNSpawner_{case}_over_kubespawner']:.2f}" for case in ("miss", "hit")]
            + [load_cell(run)]
        )
    note = "CPU ms per call, median over rounds (min and wall times in the JSON); load: 1/5/15-min averages."
    return [
        {
            "title": "Form render",
            "columns": [
                "catalog",
                "KubeSpawner (every render)",
                "CERNSpawner miss: catalog edit",
                "miss: new choice or roles",
                "hit",
                "ratio miss ÷ KubeSpawner",
                "load before → after",
            ],
            "rows": render_rows,
            "notes": [note],
        },
        {
            "title": "apply_user_options + load_user_options",
            "columns": [
                "catalog",
                "KubeSpawner",
                "CERNSpawner miss",
                "hit",
                "ratio miss",
                "ratio hit",
                "load before → after",
            ],
            "rows": load_rows,
            "notes": [note],
        },
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--sizes", default="5,200,1000", help="catalog sizes, comma-separated")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "form_render.json")
    args = parser.parse_args(argv)
    results = asyncio.run(run_all([int(n) for n in args.sizes.split(",")], args.rounds))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    for part in results["report"]:
        print(
            part["title"], *(" | ".join(map(str, row)) for row in [part["columns"], *part["rows"]]), sep="\n"
        )


if __name__ == "__main__":
    main()
