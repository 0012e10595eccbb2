"""`python -m sandbox.openstack --state DIR --port PORT`: the sandbox's OpenStack simulator."""

import argparse
import asyncio
import json
import logging
from pathlib import Path

from ..cluster import kube_client
from ..config import load_topology
from . import autoscaler
from .cloud import Cloud
from .server import make_app


async def serve(state: Path, port: int) -> None:
    settings = json.loads((state / "sandbox.json").read_text())
    credentials = json.loads((state / "openstack-credentials.json").read_text())
    cloud = Cloud(state, load_topology(settings["topology"]), credentials, f"http://127.0.0.1:{port}")
    make_app(cloud).listen(port, address="127.0.0.1")
    if cloud.autoscaled_groups():
        busy_nodes = autoscaler.busy_nodes_from(kube_client(state))
        asyncio.ensure_future(autoscaler.run(cloud, busy_nodes))
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.openstack")
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args.state, args.port))


if __name__ == "__main__":
    main()
