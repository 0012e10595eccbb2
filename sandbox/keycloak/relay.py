"""`python -m sandbox.keycloak.relay --listen HOST:PORT --to HOST:PORT`: Keycloak's back channel for pods.

Keycloak listens on 127.0.0.1 and names itself by it (its issuer), because browsers send its
`Secure` cookies over plain http only to a loopback address. A pod cannot reach the host's loopback,
so this relay copies TCP connections from the pod network's gateway to Keycloak: a hub in a pod
posts codes to the token endpoint and reads the JWKS there (its back channel), while the browser
keeps using the 127.0.0.1 issuer. Listening only on the gateway keeps Keycloak (demo passwords,
admin console) off the machine's other networks, which `--http-host=0.0.0.0` would expose it to.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

log = logging.getLogger("sandbox.keycloak.relay")


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass  # either side went away: the other is closed below
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()


async def relay(listen: tuple[str, int], target: tuple[str, int]) -> None:
    async def connect(client_reader, client_writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*target)
        except OSError as e:
            log.warning("cannot reach Keycloak at %s:%s: %s", *target, e)
            client_writer.close()
            return
        await asyncio.gather(_copy(client_reader, upstream_writer), _copy(upstream_reader, client_writer))

    server = await asyncio.start_server(connect, *listen)
    log.info("relaying %s:%s to %s:%s", *listen, *target)
    async with server:
        await server.serve_forever()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.keycloak.relay")
    parser.add_argument(
        "--listen", type=_address, required=True, help="HOST:PORT on the pod network's gateway"
    )
    parser.add_argument("--to", type=_address, required=True, help="Keycloak's HOST:PORT (loopback)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(relay(args.listen, args.to))


if __name__ == "__main__":
    main()
