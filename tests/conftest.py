"""Fixtures: the sandbox (started once per session or reused), a namespace per test, and a hub.

`make test` runs the tests in 2 pytest-xdist workers (`-n 2 --dist loadscope`) on one sandbox:
whole modules go to idle workers, and the scheduler below never runs two modules at once that
share a part of the sandbox (`pytest.mark.shares(...)` on the module). Without `-n`, as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from sandbox.config import state_dir
from sandbox.hubrunner import start_hub
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
PSA_RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def _sandbox(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandbox", *args], cwd=ROOT, capture_output=True, text=True)


# Set by the xdist controller for its workers: the sandbox a worker starts is this run's, and the
# controller stops it once every worker is done.
RUN = "CERN_TESTS_RUN"


@contextlib.contextmanager
def _sandbox_lock():
    """Held around `up` (and the controller's `down`): one `up` however many workers ask at once."""
    state = state_dir()
    state.parent.mkdir(parents=True, exist_ok=True)
    with open(state.parent / f"{state.name}.tests-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _owner_file() -> Path:
    state = state_dir()
    return state.parent / f"{state.name}.tests-owner"


@pytest.fixture(scope="session")
def sandbox():
    """The running sandbox's settings; the session fails (never skips) when it cannot start."""
    run = os.environ.get(RUN) if os.environ.get("PYTEST_XDIST_WORKER") else None
    with _sandbox_lock():
        was_running = _sandbox("status", "--json").returncode == 0
        started = _sandbox("up", "--json")
        if started.returncode == 0 and run and not was_running:
            _owner_file().write_text(run)  # the controller stops it after the last worker
    if started.returncode != 0:
        pytest.fail(
            f"the sandbox did not start: {started.stderr.strip() or started.stdout.strip()}", pytrace=False
        )
    report = json.loads(started.stdout)
    yield report
    if not run and not was_running and not os.environ.get("CERN_SANDBOX_KEEP"):
        _sandbox("down")


def _controller(config) -> bool:
    """This process hands the tests to xdist workers and runs none itself."""
    return not hasattr(config, "workerinput") and bool(getattr(config.option, "numprocesses", None))


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "shares(*resources): the module changes or counts on parts of the sandbox that other modules "
        "use too (e.g. gpu-a100, cloud); under xdist no two modules sharing one run at the same time",
    )
    if _controller(config):
        os.environ.setdefault(RUN, uuid.uuid4().hex)  # before the workers start: they inherit it


# Each test is marked by the folder it lives in, so that `-m unit` (`make unit`) selects every unit
# test whether or not its module remembered a `pytestmark`.
FOLDER_MARKS = {"unit": pytest.mark.unit, "integration": pytest.mark.integration, "e2e": pytest.mark.e2e}
TESTS = Path(__file__).resolve().parent


# tryfirst: the marks must be on the items before pytest's own hook deselects by `-m`.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        try:
            folder = Path(item.path).resolve().relative_to(TESTS).parts[0]
        except ValueError:  # a test outside tests/ (named on the command line): no folder mark
            continue
        mark = FOLDER_MARKS.get(folder)
        if mark is not None:
            item.add_marker(mark)


def pytest_sessionfinish(session):
    """Under xdist: stop the sandbox a worker started for this run, now that every worker is done."""
    if not _controller(session.config) or os.environ.get("CERN_SANDBOX_KEEP"):
        return
    with _sandbox_lock():
        owner = _owner_file()
        if owner.exists() and owner.read_text() == os.environ.get(RUN):
            _sandbox("down")
            owner.unlink()


def _module_shares(module_path: str) -> frozenset[str]:
    """The resources named by `pytest.mark.shares` in the module's `pytestmark`."""
    name = module_path.removesuffix(".py").replace("/", ".")
    try:
        module = importlib.import_module(name)
    except Exception:  # the workers report the module's collection error
        return frozenset()
    marks = getattr(module, "pytestmark", [])
    marks = marks if isinstance(marks, list) else [marks]
    return frozenset(r for mark in marks if getattr(mark, "name", None) == "shares" for r in mark.args)


def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedSandboxScheduling(LoadScopeScheduling):
        """loadscope (a module's tests on one worker, in order), and a module is handed out only when
        none of its `shares` resources is held by a module another worker has pending. Modules using
        the GPU node groups come first: they can never overlap, so they are the longest chain; then
        the other modules that share something (their chains, such as the Binder builds', must not
        start last); then the other integration modules; the unit modules, seconds each, last: they
        fill in wherever a worker is free and even out the end. A worker is handed its
        next module only when it is on its current module's last test: xdist's own rule (3 tests
        or fewer left) let one worker take the last three single-test modules while the other
        stopped, idle for 97 s at the end of a run."""

        def _split_scope(self, nodeid: str) -> str:
            return nodeid.split("::", 1)[0]

        def _shares(self, scope: str) -> frozenset[str]:
            cache = self.__dict__.setdefault("_shares_cache", {})
            if scope not in cache:
                cache[scope] = _module_shares(scope)
            return cache[scope]

        def _gpu(self, scope: str) -> bool:
            return any(resource.startswith("gpu-") for resource in self._shares(scope))

        def _held_elsewhere(self, node) -> frozenset[str]:
            held = set()
            for other, units in self.assigned_work.items():
                if other is node:
                    continue
                for scope, tests in units.items():
                    if not all(tests.values()):
                        held |= self._shares(scope)
            return frozenset(held)

        def _assign_work_unit(self, node) -> None:
            if not self.__dict__.get("_ordered"):
                self._ordered = True
                units = sorted(
                    self.workqueue.items(),
                    key=lambda unit: (
                        not self._gpu(unit[0]),
                        not self._shares(unit[0]),
                        unit[0].startswith("tests/unit/"),  # seconds each: they fill the end best
                    ),
                )
                self.workqueue.clear()
                self.workqueue.update(units)
            held = self._held_elsewhere(node)
            for scope in self.workqueue:
                if not self._shares(scope) & held:
                    break
            else:
                return  # every module left waits for a resource: this worker idles until one is freed
            work_unit = self.workqueue.pop(scope)
            self.assigned_work.setdefault(node, {})[scope] = work_unit
            collection = self.registered_collections[node]
            node.send_runtest_some([collection.index(n) for n, done in work_unit.items() if not done])

        def _reschedule(self, node) -> None:
            if node.shutting_down:
                return
            if not self.workqueue:
                node.shutdown()
                return
            # A worker runs a test once it holds the next one (to know which fixtures end): 1 left is
            # the last test of its module, waiting for the next module's first.
            if self._pending_of(self.assigned_work[node]) > 1:
                return
            self._assign_work_unit(node)

        def mark_test_complete(self, node, item_index, duration=0) -> None:
            super().mark_test_complete(node, item_index, duration)
            for other in self.nodes:  # a finished module may free what an idle worker waits for
                if other is not node:
                    self._reschedule(other)  # (or, nothing left, shut it down once its tests are done)

    return SharedSandboxScheduling(config, log)


@pytest.fixture(scope="session")
def api_client(sandbox):
    from kubernetes import config

    return config.new_client_from_config(sandbox["kubeconfig"])


@pytest.fixture(scope="session")
def kubernetes_version(api_client) -> str:
    """The API server's gitVersion (GET /version): the Kubernetes the tests ran against."""
    from kubernetes import client

    return client.VersionApi(api_client).get_code().git_version


@pytest.fixture(autouse=True)
def _record_kubernetes_version(request):
    """Each test on the sandbox names its Kubernetes version in its report (JUnit property
    `kubernetes`; the terminal summary lists them): `make test` runs some tests on two versions."""
    if "sandbox" in request.fixturenames:
        request.node.user_properties.append(("kubernetes", request.getfixturevalue("kubernetes_version")))


def pytest_terminal_summary(terminalreporter):
    counts: dict[str, int] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":
                continue
            for name, value in getattr(report, "user_properties", ()):
                if name == "kubernetes":
                    counts[value] = counts.get(value, 0) + 1
    for version, count in sorted(counts.items()):
        terminalreporter.write_line(
            f"Kubernetes {version} (the API server's /version): {count} tests ran on it"
        )


@pytest.fixture(scope="session")
def core(api_client):
    from kubernetes import client

    return client.CoreV1Api(api_client)


@pytest.fixture
def namespace(core):
    """A fresh namespace enforcing Pod Security `restricted`, deleted after the test."""
    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name, "labels": PSA_RESTRICTED}})

    def has_default_account():
        try:
            return core.read_namespaced_service_account("default", name)
        except client.ApiException:
            return None

    wait_until(has_default_account, timeout=30, what=f"service account default in {name}")
    yield name
    core.delete_namespace(name)


# The smoke service's token sits beside the session hub's log (test_smoke_hub reads it there).
SMOKE_SERVICE = """
from pathlib import Path
from cern_spawner.smoke.service import register_smoke_service
register_smoke_service(c, Path({token_file!r}).read_text(), "cern-smoke")  # noqa: F821
"""


@pytest.fixture(scope="session")
def hub(sandbox, tmp_path_factory):
    """A real JupyterHub with CERNSpawner and configurable-http-proxy, on free ports; it also has
    the service cern-smoke of `cern-spawner smoke` (least scopes on the user cern-smoke)."""
    directory = tmp_path_factory.mktemp("hub")
    token_file = directory / "smoke-token"
    token_file.write_text(uuid.uuid4().hex + uuid.uuid4().hex)
    token_file.chmod(0o600)
    try:
        running = start_hub(directory, extra_config=SMOKE_SERVICE.format(token_file=str(token_file)))
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield running
    running.stop()
