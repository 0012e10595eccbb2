"""`python -m sandbox.openstack --state DIR --port PORT`: the sandbox's OpenStack simulator."""

import argparse
import asyncio
import json
import logging
from pathlib import Path

from ..cluster import kube_client
from ..clusterapi import controller as clusterapi
from ..config import load_topology
from . import autoscaler
from .cloud import Cloud
from .server import make_app


async def serve(state: Path, port: int, internal_address: str | None) -> None:
    settings = json.loads((state / "sandbox.json").read_text())
    credentials = json.loads((state / "openstack-credentials.json").read_text())
    cloud = Cloud(state, load_topology(settings["topology"]), credentials, f"http://127.0.0.1:{port}")
    internal_url = f"http://{internal_address}:{port}" if internal_address else None
    app = make_app(cloud, internal_url)
    app.listen(port, address="127.0.0.1")
    if internal_address:  # where hubs in pods reach it (the catalog's `internal` endpoints)
        app.listen(port, address=internal_address)
    # The sandbox's Cluster API (its CRDs and controller) shares nodes.json with the cloud: same loop.
    asyncio.ensure_future(clusterapi.run(state, cloud))
    if cloud.autoscaled_groups():
        busy_nodes = autoscaler.busy_nodes_from(kube_client(state))
        asyncio.ensure_future(autoscaler.run(cloud, busy_nodes))
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.openstack")
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--internal-address", help="also listen here (the pod network's gateway)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args.state, args.port, args.internal_address))


if __name__ == "__main__":
    main()
