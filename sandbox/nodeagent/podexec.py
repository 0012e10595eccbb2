"""Become one container of a pod, then exec its command.

Started by the node agent as root with a JSON spec. Joins the pod's network namespace, takes a
private mount namespace, mounts the pod's volumes at their mount paths, hides host directories a
container would not see, drops to the container's user and execs the command. Linux only, root only.
"""

from __future__ import annotations

import ctypes
import json
import os
import stat
import sys
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encode = lambda value: value.encode() if value is not None else None  # noqa: E731
    _check(
        _libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)),
        f"mount {source} on {target}",
    )


O_PATH = 0o10000000


def bind_fd(fd: int, target: str, is_dir: bool, read_only: bool = False) -> None:
    """Bind-mount what `fd` refers to (opened before anything was covered) at `target`."""
    if is_dir:
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):  # never touch a host file (/etc/hosts) we cover
            Path(target).touch()
    mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC)
    if read_only:
        mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY)


def untraversable_ancestor(path: str) -> str | None:
    """The outermost directory above `path` that others may not enter (e.g. /root, mode 0700)."""
    current = Path("/")
    for part in Path(path).parts[1:]:
        current = current / part
        if current == Path(path):
            break
        if not os.stat(current).st_mode & stat.S_IXOTH:
            return str(current)
    return None


def within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def outermost(paths: list[str]) -> list[str]:
    """Drop paths that lie inside another path of the list."""
    kept: list[str] = []
    for path in sorted(set(paths), key=len):
        if not any(within(path, k) for k in kept):
            kept.append(path)
    return kept


def _same(path: str, fd: int) -> bool:
    try:
        here, there = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def enter(spec: dict) -> None:
    with open(spec["netns"]) as namespace:
        _check(_libc.setns(namespace.fileno(), CLONE_NEWNET), "setns")
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), "unshare")
    if spec.get("hostname"):  # the pod's own hostname, as in its UTS namespace on a node
        name = spec["hostname"][:63].encode()
        _check(_libc.sethostname(name, len(name)), "sethostname")
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing mounted here leaks to the host
    # Open everything to be bound back before covering directories: the sources may live under a
    # directory that is about to be hidden (the state directory under /tmp or /root, say).
    runtime = [(path, os.open(path, O_PATH)) for path in outermost(spec["expose"])]
    mounts = [(m, os.open(m["source"], O_PATH), os.path.isdir(m["source"])) for m in spec["mounts"]]
    # Directories closed to others (e.g. /root) become empty, as in a container image, except for
    # the runtime the command needs, which is bound back read-only.
    closed = outermost([a for path, _ in runtime if (a := untraversable_ancestor(path))])
    for directory, mode in spec["private_dirs"].items():
        mount("tmpfs", directory, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode}")
    for ancestor in closed:
        mount("tmpfs", ancestor, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    for path, fd in runtime:
        if not _same(path, fd):
            bind_fd(fd, path, is_dir=True, read_only=True)
    for entry, fd, is_dir in mounts:
        bind_fd(fd, entry["target"], is_dir, entry.get("read_only", False))
    # A volume over an ancestor of the runtime (an emptyDir at /tmp while the checkout lives under
    # /tmp, say) hides it again: bind the runtime back on top, as a container image would keep it.
    for path, fd in runtime:
        if any(within(path, entry["target"]) for entry, _, _ in mounts):
            bind_fd(fd, path, is_dir=True, read_only=True)
    for fd in [fd for _, fd in runtime] + [fd for _, fd, _ in mounts]:
        os.close(fd)


def drop_privileges(uid: int, gid: int, groups: list[int]) -> None:
    os.setgroups(groups)
    os.setgid(gid)
    os.setuid(uid)


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    try:
        enter(spec)
        drop_privileges(spec["uid"], spec["gid"], spec["groups"])
        os.chdir(spec["cwd"])
    except OSError as e:
        print(f"sandbox: cannot set up the container: {e}", file=sys.stderr, flush=True)
        sys.exit(128)
    argv = spec["argv"]
    try:
        os.execvpe(argv[0], argv, spec["env"])
    except OSError as e:
        # Exit code 127 like a shell: the command was not found or could not run.
        print(f"sandbox: cannot run {argv[0]!r}: {e}", file=sys.stderr, flush=True)
        sys.exit(127)


if __name__ == "__main__":
    main()
