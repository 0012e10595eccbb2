"""`python -m sandbox.nodeagent --state DIR`: run the node agent of the sandbox in DIR."""

import argparse
import logging
import signal
from pathlib import Path

from .agent import Agent


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.nodeagent")
    parser.add_argument("--state", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    agent = Agent(args.state)

    def stop(signum, frame):
        agent.stopping.set()  # run() returns at its next wait; shutdown stops the pods

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        agent.run()
    finally:
        agent.shutdown()


if __name__ == "__main__":
    main()
