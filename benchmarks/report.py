"""docs/performance.md's tables, generated from benchmarks/results/*.json.

    .venv/bin/python -m benchmarks.report          # rewrite the tables in place
    .venv/bin/python -m benchmarks.report --check  # exit 1 if a table differs from its JSON

Each table sits between `<!-- report:NAME -->` and `<!-- /report:NAME -->` in the document, NAME
being a results file's stem (`hub_cost` for results/hub_cost.json); everything outside the markers
is prose and is left alone. A results file is rendered by the function registered here under its
name, or from its own `report` key when it has one — a list of tables, each
`{"title": str, "columns": [str, ...], "rows": [[cell, ...], ...], "notes": [str, ...]}` — so that a
new benchmark needs no change here; a file with neither gets a table of its medians and ratios.
Every table says the run's date, the machine's cores and its load averages (1/5/15 min) as
recorded in the file.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks import stats

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOCUMENT = ROOT / "docs" / "performance.md"
MARKER = re.compile(r"(<!-- report:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /report:(?P=name) -->)", re.S)

RENDERERS: dict[str, Callable[[dict], list[str]]] = {}


def renders(name: str):
    def register(fn):
        RENDERERS[name] = fn
        return fn

    return register


def table(columns: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("" if c is None else str(c) for c in row) + " |" for row in rows]
    return lines


def load_text(load) -> str:
    if isinstance(load, dict):
        return "; ".join(f"{k} {' / '.join(str(x) for x in v)}" for k, v in load.items())
    if isinstance(load, list | tuple):
        return " / ".join(str(x) for x in load)
    return "not recorded"


def run_line(data: dict) -> str:
    machine = data.get("machine") or {}
    parts = [f"Run of {data['date'][:10]}" if data.get("date") else "Undated run"]
    if machine.get("cpus"):
        parts.append(f"{machine['cpus']} cores")
    if machine.get("python"):
        parts.append(f"Python {machine['python']}")
    if "duration_s" in data:
        parts.append(f"{data['duration_s']:.0f} s")
    load = machine.get("loadavg_1_5_15")
    if machine.get("loadavg_start") is not None:
        load = {"start": machine["loadavg_start"], "end": load}
    parts.append(f"load average (1/5/15 min) {load_text(load)}")
    return "_" + ", ".join(parts) + "._"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# How the anchor's GPU group is sized (hub_cost.py --anchor-nodes): plain KubeSpawner cannot grow it.
ANCHOR_SIZING = {
    "before": "GPU: the anchor's group is sized by an admin before its clock starts (its pods never wait).",
    "with-spawns": "GPU: the anchor's admin resizes its group as its first request goes out, before any "
    "pod exists (sooner than anything reacting to the pods could).",
    "with-pods": "GPU: the anchor's admin resizes its group once all its spawns' pods exist, as a "
    "controller reacting to pending pods could at best; both sides' pods wait for a boot.",
}


def spread(entry: dict) -> str:
    """A hub-cost ratio's 90 % interval, the ratio of the hubs' medians, and the rounds' ratios."""
    ours, theirs = entry["CERNSpawner"]["samples"], entry["KubeSpawner"]["samples"]
    low, high = stats.paired_bootstrap_interval(ours, theirs)
    rounds = entry["ratio_per_round"]
    # Dozens of rounds make a paragraph: their range then, each one in the results file.
    each = ", ".join(map(str, rounds)) if len(rounds) <= 12 else f"{min(rounds)}–{max(rounds)}"
    return (
        f"90 % interval {low:.3f}–{high:.3f} over {len(rounds)} rounds; ratio of the medians "
        f"{entry['ratio_of_medians']:.3f}; per round: {each}"
    )


@renders("hub_cost")
def hub_cost(data: dict) -> list[str]:
    summary = data["summary"]
    lines = [run_line(data), ""]
    rows = []
    for kind, label in (("shared", "shared profile"), ("gpu", "GPU profile (CERN: group from 0 nodes)")):
        entry = summary.get(f"{kind}_hub_cpu_s_per_spawn")
        if entry is None:  # a run with --rounds 0
            continue
        loads = [
            r[f"{kind} {name}"]["loadavg_1_5_15"][0]
            for r in data["spawn_rounds"]
            for name in r["order"]
            if f"{kind} {name}" in r
        ]
        rows.append(
            [
                f"hub CPU per spawn, {label}",
                ms(entry["CERNSpawner"]["median"]),
                ms(entry["KubeSpawner"]["median"]),
                f"**{entry['ratio']}** ({spread(entry)})",
                "≤ 1.05",
                f"{min(loads)}–{max(loads)}",
            ]
        )
    idle = summary.get("idle_hub_cpu_s_per_s")
    if idle:
        idle_loads = [w["loadavg_1_5_15"][0] for w in data["idle"]]
        rows.append(
            [
                "idle hub CPU (no servers)",
                f"{idle['CERNSpawner']:.5f} s/s",
                f"{idle['KubeSpawner']:.5f} s/s",
                f"**{idle['ratio']}**",
                "≤ 1.1",
                f"{min(idle_loads)}–{max(idle_loads)}",
            ]
        )
    rest = next((v for k, v in summary.items() if k.startswith("at_rest_")), None)
    if rest:
        servers = data["parameters"]["servers"]
        plain = [rest["KubeSpawner alone"], rest["KubeSpawner both"]]
        rows.append(
            [
                f"hub CPU at rest, {servers} running servers",
                f"{rest['CERNSpawner alone']['hub_cpu_s_per_s']:.5f} s/s",
                " / ".join(f"{p['hub_cpu_s_per_s']:.5f}" for p in plain) + " s/s",
                f"**{rest['ratio_cpu']}**",
                "",
                f"{rest['CERNSpawner alone']['loadavg_1_5_15'][0]} / "
                + " / ".join(str(p["loadavg_1_5_15"][0]) for p in plain),
            ]
        )
        rows.append(
            [
                f"hub RSS at rest, {servers} running servers",
                f"{rest['CERNSpawner alone']['hub_rss_mib']:.0f} MiB",
                " / ".join(f"{p['hub_rss_mib']:.0f}" for p in plain) + " MiB",
                f"**{rest['ratio_rss']}**",
                "",
                "",
            ]
        )
    if not rows:
        return lines + ["_No figure: the run stopped before its first measurement._"]
    lines += table(
        ["", "CERNSpawner", "KubeSpawner (anchor)", "ratio", "target", "load avg (1 min) during"], rows
    )
    if data.get("failure"):
        lines += ["", f"The run stopped early: {data['failure']} — the parts above it were measured."]
    params, machine = data["parameters"], data["machine"]
    notes = []
    if params.get("rounds"):
        gpu_rounds = params.get("gpu_rounds")
        fewer = (
            f" ({gpu_rounds} of them with the GPU profile)"
            if gpu_rounds is not None
            and gpu_rounds < params["rounds"]
            and "gpu" in params.get("kinds", "gpu")
            else ""
        )
        notes.append(
            f"Per spawn: median of {params['rounds']} rounds{fewer} of {params['spawns']} concurrent spawns "
            "per hub (order alternating by round); the ratio is the median of the rounds' own ratios, its "
            "interval a paired bootstrap over the rounds (benchmarks/stats.py)."
        )
    if params.get("rounds") and "gpu" in params.get("kinds", "gpu"):
        notes.append(ANCHOR_SIZING.get(params.get("anchor_nodes") or "before", ""))
        delays = [(r.get("gpu KubeSpawner") or {}).get("admin_resized_after_s") for r in data["spawn_rounds"]]
        delays = sorted(d for d in delays if d is not None)
        if delays:
            notes.append(f"The anchor's resize went out {delays[0]}–{delays[-1]} s after its first request.")
    if params.get("idle_rounds"):
        notes.append(f"Idle: median of {params['idle_rounds']} windows of {params['window']:g} s.")
    if rest:
        notes.append(
            f"At rest: windows of {params['window']:g} s; KubeSpawner measured before (alone) and after "
            "(both) the CERN hub's servers were started."
        )
    if machine.get("nodes") is not None:
        notes.append(f"Cluster at the end: {machine['nodes']} nodes, {machine['pods_all_namespaces']} pods.")
    notes.append(f"Modelled: {data.get('modelled', '')}.")
    lines += ["", " ".join(notes)]
    return lines


@renders("hub_cost_idle")
def hub_cost_idle(data: dict) -> list[str]:
    """The idle run of hub_cost.py (`--rounds 0 --servers 0`)."""
    return hub_cost(data)


@renders("hub_cost_gpu_waiting")
def hub_cost_gpu_waiting(data: dict) -> list[str]:
    """GPU spawns, both sides waiting for a boot (`--anchor-nodes with-pods`; earlier runs `with-spawns`)."""
    return hub_cost(data)


@renders("hub_cost_rest")
def hub_cost_rest(data: dict) -> list[str]:
    """The at-rest run of hub_cost.py (`--rounds 0 --idle-rounds 0 --servers N`)."""
    return hub_cost(data)


@renders("gpu_burst")
def gpu_burst(data: dict) -> list[str]:
    cern, plain = data["CERNSpawner_from_0_nodes"], data["KubeSpawner_hand_sized"]
    rows = [
        [f"cloud writes to serve all {data['users']}", cern["cloud_writes"], "1 (the admin's resize)", ""],
        ["nodes beyond those needed", cern["over_provisioned_nodes"], 0, ""],
        [
            f"all {data['users']} notebooks ready",
            f"{cern['all_ready_s']} s",
            f"{plain['all_ready_s']} s",
            round(cern["all_ready_s"] / plain["all_ready_s"], 2),
        ],
        [
            "hub CPU per spawn",
            ms(cern["hub_cpu_s_per_spawn"]),
            ms(plain["hub_cpu_s_per_spawn"]),
            data["ratio_hub_cpu_per_spawn_cern_over_kubespawner"],
        ],
        [
            "back to 0 nodes after the last pod went",
            f"{cern.get('shrink_back_s')} s, {cern.get('writes_including_shrink')} writes in all",
            "—",
            "",
        ],
    ]
    return [run_line(data), ""] + table(
        ["", "CERNSpawner, group at 0 nodes", "KubeSpawner, group sized by hand", "ratio"], rows
    )


@renders("scaling_decisions")
def scaling_decisions(data: dict) -> list[str]:
    objects = data["objects"]
    rows = [["planner, per decision", f"{data['planner_us_per_decision']} µs"]]
    if "capacity_us_per_round" in data:
        rows.append(
            ["capacity of one group from the index, per round", f"{data['capacity_us_per_round']} µs"]
        )
    if "index_us_per_pod_event" in data:
        rows.append(["capacity index, per pod event", f"{data['index_us_per_pod_event']} µs"])
    if "recount_us_per_round" in data:
        rows.append(
            ["recounting every pod (before: each round did this)", f"{data['recount_us_per_round']} µs"]
        )
    return [
        run_line(data),
        "",
        f"{objects['nodes']} nodes, {objects['pods']} pods of which {objects['waiting_gpu_pods']} "
        "wait for a GPU (process time, median of 7 rounds):",
        "",
    ] + table(["", "CPU"], rows)


def _median_range(entry: dict, unit: str = "s") -> str:
    return f"{entry['median_s']:.2f} {unit} ({entry['min_s']:.2f}–{entry['max_s']:.2f})"


@renders("spawn_latency")
def spawn_latency(data: dict) -> list[str]:
    rows = [
        [
            what,
            _median_range(data[what]["CERNSpawner"]),
            _median_range(data[what]["KubeSpawner"]),
            data[what]["ratio_cern_over_kubespawner"],
        ]
        for what in ("spawn", "stop")
    ]
    return [run_line(data), ""] + table(["", "CERNSpawner median", "KubeSpawner median", "ratio"], rows)


@renders("binder_launch")
def binder_launch(data: dict) -> list[str]:
    reuse, first, built = data["reuse"], data["first_launch"], data["concurrent"]["built"]
    rows = [
        [
            "reuse launch: request → ready",
            _median_range(reuse["ready"]["CERNSpawner"]),
            _median_range(reuse["ready"]["KubeSpawner"]),
            reuse["ratio_cern_over_kubespawner"],
        ],
        [
            "first launch (build): request → ready",
            _median_range(first["total"]),
            "cannot build",
            f"{first['ratio_first_over_reuse']} × reuse",
        ],
        [
            f"{data['parameters']['concurrent']} users, image built, at once: all ready",
            _median_range(built["CERNSpawner"]["all_ready"]),
            _median_range(built["KubeSpawner"]["all_ready"]),
            built["ratio_cern_over_kubespawner"],
        ],
    ]
    return [run_line(data), ""] + table(["", "CERNSpawner", "KubeSpawner", "ratio"], rows)


@renders("idle_cpu")
def idle_cpu(data: dict) -> list[str]:
    cpu, ratio = data["hub_cpu_s_per_s"], data["ratio_cern_over_kubespawner"]

    def spread(entry: dict) -> str:
        return f"{entry['median']:.5f} s/s ({entry['min']:.5f}–{entry['max']:.5f})"

    gets = data.get("cloud_gets_per_group_per_10s") or {}
    rows = [
        [
            "hub CPU, median (min–max)",
            spread(cpu["CERNSpawner"]),
            spread(cpu["KubeSpawner"]),
            f"**{ratio['of_medians']}** (per window: {', '.join(str(r) for r in ratio['per_window'])})",
        ],
        ["cloud GETs per group per 10 s", ", ".join(f"{g} {n}" for g, n in gets.items()), "—", ""],
    ]
    return [run_line(data), ""] + table(["", "CERNSpawner, growth on", "KubeSpawner (anchor)", "ratio"], rows)


def _leaves(value, path=()):
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _leaves(inner, (*path, str(key)))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for number, inner in enumerate(value):
            yield from _leaves(inner, (*path, str(number)))
    else:
        yield path, value


def _headline(data: dict) -> list[str]:
    """A file with neither a renderer nor a `report` key: its medians and ratios, by path."""
    rows = [
        [" › ".join(path), value]
        for path, value in _leaves(data)
        if isinstance(value, int | float)
        and not isinstance(value, bool)
        and any(word in path[-1] for word in ("median", "ratio", "mean", "failures", "orphans"))
    ]
    return [run_line(data), ""] + table(["figure", "value"], rows)


def _from_report_key(data: dict) -> list[str]:
    lines = [run_line(data)]
    for part in data["report"]:
        lines += ["", f"**{part['title']}**" if part.get("title") else ""]
        lines += [""] + table(part["columns"], part["rows"])
        for note in part.get("notes") or []:
            lines += ["", note]
    return lines


def _results(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _status(met: bool | None) -> str:
    return "—" if met is None else ("**met**" if met else "**not met**")


def _cost_status(entry: dict, target: float = 1.05) -> str:
    """Met only when the whole 90 % interval is within the target; not met when all of it is over."""
    low, high = stats.paired_bootstrap_interval(
        entry["CERNSpawner"]["samples"], entry["KubeSpawner"]["samples"]
    )
    if high <= target:
        return "**met**"
    if low > target:
        return "**not met**"
    return f"**undecided**: the interval spans {target}"


def _dated(data: dict) -> str:
    machine = data.get("machine") or {}
    load = machine.get("loadavg_start") or machine.get("loadavg_1_5_15_start")
    load = load or machine.get("loadavg_1_5_15")
    if isinstance(load, dict):  # {"start": [...], ...}
        load = next(iter(load.values()), None)
    return f"{(data.get('date') or 'undated')[:10]}, load {load[0] if load else '?'}"


def targets() -> list[str]:
    """Where each issue-16 target stands, from the results files the sections below render."""
    rows = []
    burst = _results("spawn_burst")
    if burst:
        ours, theirs = burst["summary"]["CERNSpawner"], burst["summary"]["KubeSpawner"]
        failures, orphans = ours["failures_per_round"], ours["orphan_pods_per_round"]
        rows.append(
            [
                "200 concurrent shared spawns: 0 failures, 0 orphans, 3 runs in a row",
                f"failures {'/'.join(map(str, failures))}, orphans {'/'.join(map(str, orphans))} "
                f"(KubeSpawner: failures {'/'.join(map(str, theirs['failures_per_round']))})",
                "",
                _status(len(failures) >= 3 and not any(failures) and not any(orphans)),
                f"spawn_burst ({_dated(burst)})",
            ]
        )
        gpu = (burst.get("gpu") or {}).get("CERNSpawner_from_0_nodes")
        if gpu:
            plain = burst["gpu"]["KubeSpawner_hand_sized"]
            rows.append(
                [
                    "the same burst, one-GPU profile from 0 nodes",
                    f"failures {gpu['failures']}, orphans {gpu['orphan_pods']} "
                    f"(KubeSpawner, group sized by hand: failures {plain['failures']})",
                    "",
                    _status(gpu["failures"] == 0 and gpu["orphan_pods"] == 0),
                    # A GPU burst run apart from the shared ones records its own run; else the file's.
                    f"spawn_burst ({_dated(burst['gpu'].get('run') or burst)})",
                ]
            )
    for name, kind, label in (
        ("hub_cost", "shared", "hub CPU per spawn ≤ 1.05×, shared profile"),
        ("hub_cost_gpu_waiting", "gpu", "hub CPU per spawn ≤ 1.05×, GPU profile (both wait for a boot)"),
        ("hub_cost", "gpu", "hub CPU per spawn, GPU profile, anchor's group sized before its clock"),
    ):
        data = _results(name)
        entry = data and data["summary"].get(f"{kind}_hub_cpu_s_per_spawn")
        if entry:
            rows.append(
                [
                    label,
                    f"{ms(entry['CERNSpawner']['median'])} vs {ms(entry['KubeSpawner']['median'])}",
                    f"{entry['ratio']} ({spread(entry)})",
                    _cost_status(entry) if "sized before" not in label else "— (unequal rule)",
                    f"{name} ({_dated(data)})",
                ]
            )
    idle = _results("hub_cost_idle")
    if idle and idle["summary"].get("idle_hub_cpu_s_per_s"):
        entry = idle["summary"]["idle_hub_cpu_s_per_s"]
        rows.append(
            [
                "idle hub CPU ≤ 1.1× (fake sandbox, 20 nodes)",
                f"{entry['CERNSpawner']:.5f} vs {entry['KubeSpawner']:.5f} s/s",
                entry["ratio"],
                _status(entry["ratio"] <= 1.1),
                f"hub_cost_idle ({_dated(idle)})",
            ]
        )
    process = _results("idle_cpu")
    if process:
        cpu, ratio = process["hub_cpu_s_per_s"], process["ratio_cern_over_kubespawner"]
        rows.append(
            [
                "idle hub CPU ≤ 1.1× (process mode, three scaled groups)",
                f"{cpu['CERNSpawner']['median']:.5f} vs {cpu['KubeSpawner']['median']:.5f} s/s",
                ratio["of_medians"],
                _status(ratio["of_medians"] <= 1.1),
                f"idle_cpu ({_dated(process)})",
            ]
        )
    form = _results("form_render")
    if form:
        sizes = " / ".join(str(run["profiles_in_catalog"]) for run in form["runs"])
        render = [r["render"]["ratio_cpu_median"]["CERNSpawner_miss_over_kubespawner"] for r in form["runs"]]
        load = [run["load_user_options"]["ratio_cpu_median"] for run in form["runs"]]
        miss = [r["CERNSpawner_miss_over_kubespawner"] for r in load]
        hit = [r["CERNSpawner_hit_over_kubespawner"] for r in load]
        rows.append(
            [
                f"form render on a miss ≤ KubeSpawner's, {sizes} profiles",
                "catalog-edit miss",
                " / ".join(map(str, render)),
                _status(all(r <= 1 for r in render)),
                f"form_render ({_dated(form)})",
            ]
        )
        rows.append(
            [
                f"`load_user_options` ≤ 1.5× KubeSpawner's, {sizes} profiles",
                "apply_user_options + load_user_options, miss (hit)",
                " / ".join(f"{m} ({h})" for m, h in zip(miss, hit, strict=True)),
                _status(all(r <= 1.5 for r in miss + hit))
                + "".join(
                    f", {case} at {run['profiles_in_catalog']}"
                    for run, m, h in zip(form["runs"], miss, hit, strict=True)
                    for case, r in (("miss", m), ("hit", h))
                    if r > 1.5
                ),
                f"form_render ({_dated(form)})",
            ]
        )
    rest = _results("hub_cost_rest")
    entry = rest and next((v for k, v in rest["summary"].items() if k.startswith("at_rest_")), None)
    if entry:
        rows.append(
            [
                f"{rest['parameters']['servers']} running servers: RSS and CPU at rest, measured",
                f"CPU {entry['CERNSpawner alone']['hub_cpu_s_per_s']:.4f} s/s, "
                f"RSS {entry['CERNSpawner alone']['hub_rss_mib']:.0f} MiB",
                f"CPU {entry['ratio_cpu']}, RSS {entry['ratio_rss']}",
                "**met** (measured)",
                f"hub_cost_rest ({_dated(rest)})",
            ]
        )
    if not rows:
        return ["_No results yet: run `make bench`._"]
    columns = ["issue-16 target", "figure (CERNSpawner vs KubeSpawner)", "ratio", "status", "results"]
    return table(columns, rows)


# Tables made from several results files (no file of their own).
COMPOSITES: dict[str, Callable[[], list[str]]] = {"targets": targets}


def render(name: str) -> list[str]:
    if name in COMPOSITES:
        return COMPOSITES[name]()
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return [f"_No results yet: run `make bench` (benchmarks/results/{name}.json)._"]
    data = json.loads(path.read_text())
    if "report" in data:
        return _from_report_key(data)
    if name in RENDERERS:
        return RENDERERS[name](data)
    return _headline(data)


def rewrite(text: str) -> str:
    return MARKER.sub(lambda m: m.group(1) + "\n".join(render(m.group("name"))) + "\n" + m.group(4), text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the document is out of date")
    args = parser.parse_args()
    text = DOCUMENT.read_text()
    new = rewrite(text)
    if args.check:
        sys.exit(0 if new == text else 1)
    DOCUMENT.write_text(new)
    print(f"{DOCUMENT.relative_to(ROOT)}: {len(MARKER.findall(new))} tables from benchmarks/results/")


if __name__ == "__main__":
    main()
