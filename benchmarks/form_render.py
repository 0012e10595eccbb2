"""Form render and load_user_options: CERNSpawner's catalog against KubeSpawner's static profile_list.

Both spawners get the same profiles, in the same run: CERNSpawner reads them from a catalog of N
profiles gated by 50 roles (the user holds 5), KubeSpawner gets the equivalent static profile_list
(the profiles that user is offered). No cluster is involved: the work measured is the hub's.

    .venv/bin/python benchmarks/form_render.py

Writes benchmarks/results/form_render.json.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import kubespawner.spawner  # noqa: E402
from kubespawner import KubeSpawner  # noqa: E402
from traitlets.config import Config  # noqa: E402

from cern_spawner import CERNSpawner  # noqa: E402
from cern_spawner.catalog import allowed_profiles, load_catalog, to_profile_list  # noqa: E402

ROLES = [f"role-{index}" for index in range(50)]
USER_ROLES = set(ROLES[:5])
# Building a spawner loads a kube config; nothing here talks to an API server.
kubespawner.spawner.load_config = lambda **kwargs: None


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
        if index == 0:
            lines.append("    default: true")
    return "\n".join(lines) + "\n"


def mock_user(spawner):
    spawner.user.groups = [SimpleNamespace(name=role) for role in sorted(USER_ROLES)]
    spawner.user.admin = False
    return spawner


async def per_call(fn, rounds: int = 7, calls: int = 200) -> dict:
    """Median over rounds of the mean time per call, in milliseconds."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            await fn()
        samples.append((time.perf_counter() - start) / calls * 1000)
    return {"median_ms": round(statistics.median(samples), 4), "min_ms": round(min(samples), 4)}


async def measure(profiles: int, scratch: Path) -> dict:
    directory = scratch / f"catalog-{profiles}"
    directory.mkdir()
    (directory / "profiles.yaml").write_text(catalog_yaml(profiles))
    catalog = load_catalog([directory])
    offered = to_profile_list(catalog, allowed_profiles(catalog, USER_ROLES))

    config = Config()
    config.CERNSpawner.profiles_path = [str(directory)]
    cern = mock_user(CERNSpawner(_mock=True, config=config))
    static = Config()
    static.KubeSpawner.profile_list = offered
    plain = KubeSpawner(_mock=True, config=static)
    choice = {"profile": offered[1]["slug"]}

    async def cern_render():
        await cern._render_options_form_dynamically(cern)

    async def plain_render():
        plain._render_options_form(plain.profile_list)

    async def cern_load():
        cern.user_options = dict(choice)
        await cern._check_user_options(cern, cern.user_options)
        await cern.load_user_options()

    async def plain_load():
        plain.user_options = dict(choice)
        await plain.load_user_options()

    result = {
        "profiles_in_catalog": profiles,
        "profiles_offered": len(offered),
        "render": {"CERNSpawner": await per_call(cern_render), "KubeSpawner": await per_call(plain_render)},
        "load_user_options": {
            "CERNSpawner": await per_call(cern_load),
            "KubeSpawner": await per_call(plain_load),
        },
    }
    for phase in ("render", "load_user_options"):
        result[phase]["ratio_cern_over_kubespawner"] = round(
            result[phase]["CERNSpawner"]["median_ms"] / result[phase]["KubeSpawner"]["median_ms"], 3
        )
    return result


async def run_all() -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        results = {"benchmark": "form_render", "roles": len(ROLES), "user_roles": len(USER_ROLES)}
        results["runs"] = [await measure(n, Path(scratch)) for n in (5, 200)]
    return results


def main() -> None:
    results = asyncio.run(run_all())
    out = ROOT / "benchmarks" / "results" / "form_render.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
