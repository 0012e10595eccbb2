"""`python -m sandbox up|down|status [--json]`: the local cluster for tests and the demo."""

from __future__ import annotations

import argparse
import json
import sys

from .binaries import KUBERNETES_TOOLSETS, minor
from .errors import SandboxError

SUPPORTED = [minor(toolset) for toolset in KUBERNETES_TOOLSETS]


def _print_status(report: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=1))
        return
    if not report["running"]:
        print("sandbox: not running")
        return
    print(f"sandbox: running, API server {report['server']} (Kubernetes {report.get('kubernetes')})")
    print(f"  export KUBECONFIG={report['kubeconfig']}")
    print(f"  user namespace: {report['user_namespace']} (Pod Security Admission: restricted)")
    if kc := report.get("keycloak"):
        users = ", ".join(kc["users"])
        print(f"  Keycloak: issuer {kc['issuer']} (users {users}, password {kc['demo_password']})")
    if registry := report.get("registry"):
        print(f"  image registry: {registry['url']}")
    if git := report.get("git"):
        # What a repository launch can use: /hub/binder/v2/git/<url-encoded URL>/main
        for name, repo in git["repos"].items():
            print(f"  git repository {name}: {repo['url']}")
    for node in report["nodes"]:
        gpus = f", {node['gpus']} GPUs" if node["gpus"] != "0" else ""
        state = "Ready" if node["ready"] else "NotReady"
        print(f"  {node['name']:<36} {state:<9} {node['node_group']} ({node['zone']}{gpus})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start the sandbox, or reuse the running one")
    start.add_argument("--topology", help="node groups YAML (default: sandbox/topology.yaml)")
    start.add_argument("--fake", action="store_true", help="mark pods Running without starting processes")
    start.add_argument(
        "--kubernetes",
        metavar="MINOR",
        help=f"the Kubernetes minor to run: {SUPPORTED[0]} (current) or {SUPPORTED[1]} (previous); "
        "default: $CERN_SANDBOX_KUBERNETES, else current",
    )
    start.add_argument("--json", action="store_true")
    commands.add_parser("down", help="stop everything the sandbox started")
    show = commands.add_parser("status", help="what runs, where the kubeconfig is")
    show.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from . import cluster

    try:
        if args.command == "up":
            _print_status(cluster.up(args.topology, fake=args.fake, kubernetes=args.kubernetes), args.json)
        elif args.command == "down":
            cluster.down()
        else:
            report = cluster.status()
            _print_status(report, args.json)
            return 0 if report["running"] else 3
    except SandboxError as e:
        print(f"sandbox: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sandbox: interrupted; `python -m sandbox down` cleans up", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
