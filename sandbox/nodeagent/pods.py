"""Run the pods that the scheduler binds to the sandbox's nodes, and report them truthfully.

Each pod gets a worker thread: it materializes volumes, creates the pod's network namespace,
starts each container's command as a process (through podexec), restarts it per restartPolicy,
reports phase, IP, readiness and exit codes, and on deletion sends SIGTERM, waits the grace
period, kills, and removes the pod object (what the kubelet does). In fake mode no process runs:
the pod is reported Running at once, for scale tests.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client

from ..builder import oci
from . import images, netpolicy, volumes
from .network import NetworkError

log = logging.getLogger("sandbox.pods")
STRATEGIC = "application/strategic-merge-patch+json"
RESTART_BACKOFF_MAX = 30.0
# A failed pod setup is tried again after 1 s, then twice as long each time, up to 16 s.
SETUP_RETRY_FIRST = 1.0
SETUP_RETRY_MAX = 16.0
API_TIMEOUT = 10  # seconds; a hung request must not stall a pod's worker forever
# The sandbox has one "image", shaped like Jupyter Docker Stacks: USER 1000 (jovyan), and a
# writable home directory.
IMAGE_HOME = "/home/jovyan"
IMAGE_USER = 1000
# Image pulls from the sandbox registry: how long ErrImagePull shows, then the back-off between
# tries (a kubelet's starts at 10 s and caps at 5 min; the sandbox's builds take seconds).
PULL_ERROR_SHOWN = 2.0
PULL_BACKOFF_FIRST = 4.0
PULL_BACKOFF_MAX = 20.0


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def probe_port(container, port) -> int:
    """A probe's port: a number, or the name of one of the container's ports (as the kubelet
    resolves it); ValueError when the name is not there."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for declared in container.ports or []:
        if declared.name == port:
            return int(declared.container_port)
    raise ValueError(f"no container port named {port!r}")


@dataclass
class Container:
    name: str
    spec: client.V1Container
    process: subprocess.Popen | None = None
    restarts: int = 0
    started_at: str | None = None
    terminated: dict | None = None  # last termination: exitCode, reason, startedAt, finishedAt
    ready: bool = False
    next_start: float = 0.0
    log_file: Path | None = None
    extra: dict = field(default_factory=dict)


class PodWorker(threading.Thread):
    def __init__(self, agent, pod: client.V1Pod, pod_ip: str):
        super().__init__(name=f"pod-{pod.metadata.namespace}/{pod.metadata.name}", daemon=True)
        self.agent = agent
        self.pod = pod
        self.uid = pod.metadata.uid
        self.ip = pod_ip
        self.deleting = threading.Event()
        self.gone = threading.Event()  # the pod object vanished (force delete)
        self.dir = agent.state / "pods" / f"{pod.metadata.namespace}_{pod.metadata.name}_{self.uid}"
        # Logs outlive the pod (for post-mortems); everything else of it is removed with it.
        self.logs = agent.state / "logs" / "pods" / self.dir.name
        self.netns: str | None = None
        self.etc_mounts: list[dict] = []  # resolv.conf, hosts, hostname (the node's DNS settings)
        self.containers = [Container(c.name, c) for c in pod.spec.containers]
        self.phase = "Pending"
        self.failure: tuple[str, str] | None = None
        self.started = now()
        self._last_status: str | None = None

    # -- API helpers -----------------------------------------------------------------
    @property
    def api(self) -> client.CoreV1Api:
        return self.agent.core

    def event(self, reason: str, message: str, kind: str = "Normal") -> None:
        meta = self.pod.metadata
        body = {
            "metadata": {"generateName": f"{meta.name}.", "namespace": meta.namespace},
            "involvedObject": {
                "kind": "Pod",
                "name": meta.name,
                "namespace": meta.namespace,
                "uid": meta.uid,
                "apiVersion": "v1",
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": "kubelet", "host": self.pod.spec.node_name},
            "firstTimestamp": now(),
            "lastTimestamp": now(),
            "count": 1,
        }
        try:
            self.api.create_namespaced_event(meta.namespace, body, _request_timeout=API_TIMEOUT)
        except Exception as e:  # events are best effort, as the kubelet's are
            log.debug("event %s for %s not recorded: %r", reason, meta.name, e)

    def push_status(self) -> None:
        status = self.status()
        encoded = json.dumps(status, sort_keys=True)
        if encoded == self._last_status:
            return
        try:
            self.api.patch_namespaced_pod_status(
                self.pod.metadata.name,
                self.pod.metadata.namespace,
                {"status": status},
                _content_type=STRATEGIC,
                _request_timeout=API_TIMEOUT,
            )
            self._last_status = encoded
        except client.ApiException as e:
            if e.status == 404:
                self.gone.set()
            else:
                log.warning("status of %s not written: %s", self.name, e.reason)
        except Exception as e:  # a timeout or a dropped connection: the next loop writes it again
            log.warning("status of %s not written: %r", self.name, e)

    def status(self) -> dict:
        all_ready = all(c.ready for c in self.containers) and self.phase == "Running"
        statuses = []
        for c in self.containers:
            entry = {
                "name": c.name,
                "image": c.spec.image or "",
                "imageID": f"sandbox://{c.spec.image}",
                "containerID": f"sandbox://{self.uid}/{c.name}/{c.restarts}",
                "restartCount": c.restarts,
                "ready": c.ready,
                "started": c.process is not None and c.process.poll() is None,
            }
            if c.process is not None and c.process.poll() is None:
                entry["state"] = {"running": {"startedAt": c.started_at}}
            elif c.terminated and self.phase in ("Succeeded", "Failed"):
                entry["state"] = {"terminated": c.terminated}
            elif c.terminated:
                entry["state"] = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"exit code {c.terminated['exitCode']}",
                    }
                }
            else:
                reason, message = self.failure or ("ContainerCreating", "")
                entry["state"] = {"waiting": {"reason": reason, "message": message}}
            if c.terminated:
                entry["lastState"] = {"terminated": c.terminated}
            statuses.append(entry)
        conditions = [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": str(all_ready)},
            {"type": "Ready", "status": str(all_ready)},
        ]
        for condition in conditions:
            condition["lastTransitionTime"] = self.started
        status = {
            "phase": self.phase,
            "hostIP": self.agent.network.gateway,
            "hostIPs": [{"ip": self.agent.network.gateway}],
            "startTime": self.started,
            "conditions": conditions,
            "containerStatuses": statuses,
            "qosClass": self.pod.status.qos_class if self.pod.status else None,
        }
        if self.phase in ("Running", "Succeeded", "Failed") or any(c.process for c in self.containers):
            status["podIP"] = self.ip
            status["podIPs"] = [{"ip": self.ip}]
        if self.phase == "Failed" and self.failure:
            status["reason"], status["message"] = self.failure
        return status

    # -- lifecycle -------------------------------------------------------------------
    def run(self) -> None:
        try:
            if self.agent.fake:
                self.run_fake()
            else:
                self.run_processes()
        except Exception:
            log.exception("pod worker %s crashed", self.name)
        finally:
            self.cleanup()
            self.finalize()

    def run_fake(self) -> None:
        for c in self.containers:
            c.started_at, c.ready = now(), True
            c.process = None
        self.phase = "Running"
        status = self.status()
        for entry in status["containerStatuses"]:
            entry["state"] = {"running": {"startedAt": self.started}}
            entry["started"] = True
        status["podIP"], status["podIPs"] = self.ip, [{"ip": self.ip}]
        try:
            self.api.patch_namespaced_pod_status(
                self.pod.metadata.name,
                self.pod.metadata.namespace,
                {"status": status},
                _content_type=STRATEGIC,
            )
        except client.ApiException as e:
            log.warning("fake status of %s not written: %s", self.name, e.reason)
        while not (self.deleting.wait(1.0) or self.gone.is_set()):
            pass

    def identity(self, spec: client.V1Container) -> tuple[int, int, list[int]]:
        pod_ctx = self.pod.spec.security_context or client.V1PodSecurityContext()
        ctx = spec.security_context or client.V1SecurityContext()
        uid = ctx.run_as_user if ctx.run_as_user is not None else pod_ctx.run_as_user
        gid = ctx.run_as_group if ctx.run_as_group is not None else pod_ctx.run_as_group
        non_root = ctx.run_as_non_root if ctx.run_as_non_root is not None else pod_ctx.run_as_non_root
        uid = IMAGE_USER if uid is None else uid
        if non_root and uid == 0:
            raise PodSetupError(
                "CreateContainerConfigError", "container has runAsNonRoot and would run as root"
            )
        groups = [g for g in [pod_ctx.fs_group, *(pod_ctx.supplemental_groups or [])] if g is not None]
        return uid, 0 if gid is None else gid, groups

    def run_processes(self) -> None:
        # A kubelet retries a pod's setup (volume mounts, sandbox, container config) with a backoff
        # until it works or the pod is deleted: a ConfigMap created after its pod, such as the
        # namespace's kube-root-ca.crt that kube-controller-manager publishes moments after the
        # namespace, only delays the start. So do we.
        delay = SETUP_RETRY_FIRST
        while True:
            try:
                self.prepare()
                break
            except PodSetupError as e:
                if self.failure != (e.reason, e.message):
                    log.warning("pod %s cannot start yet: %s: %s", self.name, e.reason, e.message)
                    self.event(e.reason, e.message, "Warning")
                self.failure = (e.reason, e.message)
                self.push_status()
            if self.deleting.wait(delay) or self.gone.is_set():
                return
            delay = min(delay * 2, SETUP_RETRY_MAX)
        self.failure = None
        self.phase = "Running"
        while not self.gone.is_set():
            self.supervise()
            self.push_status()
            if self.deleting.is_set() or self.phase in ("Succeeded", "Failed"):
                break
            self.deleting.wait(0.3)
        if self.deleting.is_set():
            self.terminate()
        elif self.phase in ("Succeeded", "Failed"):
            while not (self.deleting.wait(2.0) or self.gone.is_set()):
                pass

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        first = self.containers[0].spec
        uid, gid, groups = self.identity(first)
        owner = (uid, groups[0] if groups else gid)
        try:
            self.volume_paths = volumes.materialize(self.api, self.pod, self.dir / "volumes", owner)
        except (volumes.VolumeError, client.ApiException) as e:
            raise PodSetupError("FailedMount", str(e)) from e
        if self.netns is None:  # made once: a retried setup keeps it
            try:
                self.netns = self.agent.network.create_pod(self.ip)
            except NetworkError as e:
                raise PodSetupError("FailedCreatePodSandBox", str(e)) from e
        if self.agent.services is not None:
            self.etc_mounts = self.agent.services.pod_files(self.pod, self.ip, self.dir / "etc")
        for c in self.containers:
            self.pull_image(c)

    def pull_image(self, c: Container) -> None:
        """An image of the sandbox's registry is pulled: its content becomes the home directory
        (images.py). Any other image stands for the host's environment, always present."""
        image = c.spec.image or ""
        try:
            ref = oci.parse_reference(image)
        except ValueError:
            ref = None
        if ref is None or ref.host not in images.sandbox_registries(self.agent.state):
            self.event("Pulled", f'Container image "{image}" already present on machine (sandbox)')
            return
        uid, gid, groups = self.identity(c.spec)
        home, owner = self.dir / "home" / c.name, (uid, groups[0] if groups else gid)
        delay = PULL_BACKOFF_FIRST
        while True:
            self.event("Pulling", f'Pulling image "{image}"')
            started = time.monotonic()
            try:
                pulled = images.pull(image, home, owner)
                break
            except images.ImageError as e:
                shutil.rmtree(home, ignore_errors=True)  # nothing half-unpacked stays for the next try
                self.event("Failed", e.message, "Warning")
                self.failure = (e.reason, e.message)
                self.push_status()
            # As a kubelet does: ErrImagePull, then ImagePullBackOff until the next try, the wait
            # doubling; a build that finishes later still gets its pod started.
            if self.deleting.wait(PULL_ERROR_SHOWN) or self.gone.is_set():
                raise PodSetupError(*self.failure)
            self.failure = ("ImagePullBackOff", f'Back-off pulling image "{image}"')
            self.event("BackOff", self.failure[1], "Warning")
            self.push_status()
            if self.deleting.wait(delay) or self.gone.is_set():
                raise PodSetupError(*self.failure)
            delay = min(delay * 2, PULL_BACKOFF_MAX)
        self.failure = None
        self.event(
            "Pulled",
            f'Successfully pulled image "{image}" in {time.monotonic() - started:.1f}s '
            f"({pulled['entries']} files unpacked into {IMAGE_HOME}, {pulled['digest']})",
        )

    def supervise(self) -> None:
        policy = self.pod.spec.restart_policy or "Always"
        for c in self.containers:
            if c.process is None:
                if c.terminated is None or time.monotonic() >= c.next_start:
                    if c.terminated is not None:
                        c.restarts += 1
                    self.start_container(c)
                continue
            code = c.process.poll()
            if code is None:
                c.ready = self.probe(c)
                continue
            c.ready = False
            c.terminated = {
                "exitCode": code if code >= 0 else 128 - code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": c.started_at,
                "finishedAt": now(),
                "containerID": f"sandbox://{self.uid}/{c.name}/{c.restarts}",
            }
            c.process = None
            if policy == "Always" or (policy == "OnFailure" and code != 0):
                delay = min(10.0 * (2 ** min(c.restarts, 5)), RESTART_BACKOFF_MAX)
                c.next_start = time.monotonic() + delay
                self.event("BackOff", f"Back-off restarting failed container {c.name}", "Warning")
            else:
                c.next_start = float("inf")
        if policy != "Always" and all(
            c.process is None and c.next_start == float("inf") for c in self.containers
        ):
            failed = any(c.terminated and c.terminated["exitCode"] != 0 for c in self.containers)
            self.phase = "Failed" if failed else "Succeeded"

    def start_container(self, c: Container) -> None:
        uid, gid, groups = self.identity(c.spec)
        home = self.dir / "home" / c.name
        home.mkdir(parents=True, exist_ok=True)
        os.chown(home, uid, groups[0] if groups else gid)
        # The node's /etc files first: a volume mounted at one of them wins, as with a kubelet.
        mounts = [{"source": str(home), "target": IMAGE_HOME}, *self.etc_mounts]
        for mount in c.spec.volume_mounts or []:
            source = self.volume_paths[mount.name]
            if mount.sub_path:
                source = source / mount.sub_path
            mounts.append(
                {"source": str(source), "target": mount.mount_path, "read_only": bool(mount.read_only)}
            )
        argv = [*(c.spec.command or []), *(c.spec.args or [])]
        env = self.agent.environment(self.pod, c.spec, self.ip)
        env.setdefault("HOME", IMAGE_HOME)
        spec = {
            "netns": f"/var/run/netns/{self.netns}",
            "hostname": self.pod.spec.hostname or self.pod.metadata.name,
            "private_dirs": {"/home": "0755", "/tmp": "1777"},
            "mounts": mounts,
            "expose": self.agent.runtime_paths,
            "uid": uid,
            "gid": gid,
            "groups": groups,
            "cwd": c.spec.working_dir or IMAGE_HOME,
            "env": env,
            "argv": argv,
        }
        spec_file = self.dir / f"{c.name}.json"
        spec_file.write_text(json.dumps(spec))
        spec_file.chmod(0o600)
        c.log_file = self.logs / f"{c.name}.log"
        if not argv:
            self.failure = (
                "CreateContainerConfigError",
                "no command: the sandbox cannot run image entrypoints",
            )
            c.terminated, c.next_start = {"exitCode": 128, "reason": "ContainerCannotRun"}, float("inf")
            return
        with open(c.log_file, "ab") as out:
            c.process = subprocess.Popen(
                [sys.executable, "-m", "sandbox.nodeagent.podexec", str(spec_file)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd="/",
                env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": self.agent.source_root},
            )
        c.started_at = now()
        c.ready = self.probe(c)
        log.info(
            "pod %s: started container %s (pid %d, restart %d)", self.name, c.name, c.process.pid, c.restarts
        )
        self.event("Started", f"Started container {c.name}")

    def probe(self, c: Container) -> bool:
        probe = c.spec.readiness_probe
        if probe is None:
            return True
        try:
            # From the node, like kubelet's: NetworkPolicies let them through (netpolicy.NODE_MARK).
            if probe.tcp_socket is not None:
                with netpolicy.node_connection(self.ip, probe_port(c.spec, probe.tcp_socket.port), timeout=1):
                    return True
            if probe.http_get is not None:
                port = probe_port(c.spec, probe.http_get.port)
                return netpolicy.http_probe(self.ip, port, probe.http_get.path or "/", 1)
        except (OSError, ValueError):
            return False
        return True  # exec probes are not run in the sandbox: treated as passing

    def terminate(self) -> None:
        grace = self.agent.grace_period(self.uid, self.pod)
        running = [c for c in self.containers if c.process is not None and c.process.poll() is None]
        for c in running:
            self.event("Killing", f"Stopping container {c.name}")
            try:
                os.killpg(c.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(c.process.poll() is None for c in running):
            time.sleep(0.1)
        for c in running:
            if c.process.poll() is None:
                try:
                    os.killpg(c.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                c.process.wait()

    def cleanup(self) -> None:
        for c in self.containers:
            if c.process is not None and c.process.poll() is None:
                try:
                    os.killpg(c.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                c.process.wait()
        if self.netns:
            self.agent.network.delete_pod(self.ip)
        volumes.remove(self.dir)

    def finalize(self) -> None:
        """Remove the pod object once it is being deleted and nothing of it runs (the kubelet's job)."""
        self.agent.release(self)
        if not self.deleting.is_set() or self.gone.is_set():
            return
        meta = self.pod.metadata
        try:
            self.api.delete_namespaced_pod(
                meta.name,
                meta.namespace,
                body=client.V1DeleteOptions(
                    grace_period_seconds=0, preconditions=client.V1Preconditions(uid=self.uid)
                ),
            )
        except client.ApiException as e:
            if e.status not in (404, 409):
                log.warning("pod %s not removed: %s", self.name, e.reason)


class PodSetupError(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message
