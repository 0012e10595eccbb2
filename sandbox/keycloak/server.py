"""Start Keycloak in dev mode for one sandbox, with its own home, database and realm file.

The cached distribution is shared by every sandbox and never written to: each sandbox gets a
home directory (in its state directory) that links the distribution's jars and holds its own
`lib/quarkus` build output, `conf`, and `data` (H2 database, realm import). `down` deletes it,
so `down` + `up` starts from the committed realm again.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sys
import time
from pathlib import Path

from ..controlplane import _http_ok, free_port
from ..procs import Registry, alive, wait_for
from . import admin, dist

REALM = "cern"
CLIENT_ID = "jupyterhub"
EXCHANGE_AUDIENCE = "eos-service"
DEMO_USERS = {"alice": [], "bob": ["gpu-users"], "carol": ["hub-admins"]}
DEMO_PASSWORD = "cern-demo"  # a local sandbox's demo users, printed by `make demo`
RELATIVE_PATH = "/auth"  # CERN's SSO serves /auth/realms/cern, as Keycloak did before version 17
HEAP = "-Xms64m -Xmx640m"  # 2-core, shared machine: enough for a realm of three users
START_TIMEOUT = 300  # a cold start (Quarkus augmentation) takes ~45 s on an idle 2-core machine
REALM_TEMPLATE = Path(__file__).with_name("realm-cern.json")
EXCHANGE_SCOPE = Path(__file__).with_name("scope-eos-service-audience.json")
# Options Quarkus bakes in at build time: a change means a new augmentation, so they key its cache.
BUILD_OPTIONS = ("start-dev", f"--http-relative-path={RELATIVE_PATH}")


def _private(path: Path, text: str) -> Path:
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)
    return path


def _build_key() -> str:
    return hashlib.sha256(" ".join(BUILD_OPTIONS).encode()).hexdigest()[:12]


def make_home(install: Path, home: Path) -> None:
    """A Keycloak home whose big, read-only parts link to the cached distribution."""
    if home.exists():
        shutil.rmtree(home)
    (home / "bin").mkdir(parents=True)
    # kc.sh finds its home through readlink -f: a copy, so that home is this directory.
    shutil.copy2(install / "bin" / "kc.sh", home / "bin" / "kc.sh")
    (home / "bin" / "kc.sh").chmod(0o755)
    for part in ("conf", "themes", "providers"):
        shutil.copytree(install / part, home / part)
    (home / "lib").mkdir()
    shutil.copytree(install / "lib" / "app", home / "lib" / "app")
    shutil.copy2(install / "lib" / "quarkus-run.jar", home / "lib" / "quarkus-run.jar")
    os.symlink(install / "lib" / "lib", home / "lib" / "lib")
    built = dist.augmented(dist.VERSION, _build_key())
    shutil.copytree(built if built.is_dir() else install / "lib" / "quarkus", home / "lib" / "quarkus")


def render_realm(client_secret: str, exchange_secret: str) -> dict:
    realm = json.loads(REALM_TEMPLATE.read_text())
    secrets_by_client = {CLIENT_ID: client_secret, EXCHANGE_AUDIENCE: exchange_secret}
    for client in realm["clients"]:
        client["secret"] = secrets_by_client[client["clientId"]]
    return realm


def start(registry: Registry, state: Path, backchannel_address: str | None = None) -> dict:
    """Start Keycloak, wait until realm `cern` is served, and return what sandbox.json records.

    Browsers, tests and hubs on the host use the issuer at 127.0.0.1. With `backchannel_address`
    (the pod network's gateway), hubs in pods reach the same Keycloak there, through a relay
    (relay.py): `backchannel_url` in what is recorded."""
    java = dist.java_home()  # fail before the download when no JDK fits
    install = dist.install()
    root = state / "keycloak"
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    home = root / "home"
    make_home(install, home)

    bootstrap = {"username": "admin", "password": secrets.token_urlsafe(18)}
    admin_file = _private(root / "admin.json", json.dumps(bootstrap))
    client_secret = secrets.token_urlsafe(24)
    secret_file = _private(root / f"{CLIENT_ID}-client-secret", client_secret)
    exchange_file = _private(root / f"{EXCHANGE_AUDIENCE}-client-secret", secrets.token_urlsafe(24))
    imports = home / "data" / "import"
    imports.mkdir(parents=True)
    realm = render_realm(client_secret, exchange_file.read_text())
    _private(imports / f"{REALM}.json", json.dumps(realm, indent=1))

    port = free_port()
    base = f"http://127.0.0.1:{port}{RELATIVE_PATH}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KC_", "JAVA_OPTS", "KEYCLOAK_"))}
    env |= {
        "JAVA_HOME": str(java),
        "JAVA_OPTS_KC_HEAP": HEAP,
        "KC_BOOTSTRAP_ADMIN_USERNAME": bootstrap["username"],
        "KC_BOOTSTRAP_ADMIN_PASSWORD": bootstrap["password"],
    }
    command = [
        str(home / "bin" / "kc.sh"),
        *BUILD_OPTIONS,
        "--import-realm",
        "--http-host=127.0.0.1",
        f"--http-port={port}",
        # One issuer for hub, tests and browser, whatever Host header a request carries.
        f"--hostname={base}",
    ]
    started = time.monotonic()
    daemon = registry.start("keycloak", command, env=env)
    wait_for(
        lambda: _http_ok(f"{base}/realms/{REALM}/.well-known/openid-configuration"),
        timeout=START_TIMEOUT,
        what="Keycloak",
        hint=f"see {daemon.log}",
        give_up=lambda: None if alive(daemon) else "it exited",
    )
    ready = time.monotonic()
    dist.save_augmented(home / "lib" / "quarkus", dist.VERSION, _build_key())
    recorded = {
        "version": dist.VERSION,
        "java_home": str(java),
        "base_url": base,
        "issuer": f"{base}/realms/{REALM}",
        "realm": REALM,
        "client_id": CLIENT_ID,
        "client_secret_file": str(secret_file),
        "exchange_audience": EXCHANGE_AUDIENCE,
        "admin_credentials": str(admin_file),
        "users": DEMO_USERS,
        "demo_password": DEMO_PASSWORD,
        "log": daemon.log,
        "start_seconds": round(ready - started, 1),
    }
    if backchannel_address:
        recorded["backchannel_url"] = start_relay(registry, backchannel_address, port)
    admin.add_exchange_scope(recorded, EXCHANGE_SCOPE)
    return recorded


def start_relay(registry: Registry, address: str, port: int) -> str:
    """The relay from `address`:`port` to Keycloak's 127.0.0.1:`port`; its base URL once it answers."""
    relay = registry.start(
        "keycloak-relay",
        [
            sys.executable,
            "-m",
            "sandbox.keycloak.relay",
            "--listen",
            f"{address}:{port}",
            "--to",
            f"127.0.0.1:{port}",
        ],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    url = f"http://{address}:{port}{RELATIVE_PATH}"
    wait_for(
        lambda: _http_ok(f"{url}/realms/{REALM}/.well-known/openid-configuration"),
        timeout=30,
        what="Keycloak's relay for pods",
        hint=f"see {relay.log}",
        give_up=lambda: None if alive(relay) else "it exited",
    )
    return url
