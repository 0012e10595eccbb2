"""The sandbox's git server: bare repositories served over git's smart HTTP by `git http-backend`.

`sandbox up` turns each test repository in sandbox/repos/<name>/ (plain files) into a bare
repository `<name>.git` with one commit on `main` and an annotated tag `v1`. Author, committer,
tagger and dates are fixed, so the commits are the same on every machine with the same files.

    python -m sandbox.gitserver --root DIR --host 127.0.0.1 --port 8080
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"
REPOS = Path(__file__).resolve().parent / "repos"
# One identity and instant for every commit and tag, so commit ids are reproducible.
IDENTITY = {
    "GIT_AUTHOR_NAME": "Sandbox",
    "GIT_AUTHOR_EMAIL": "sandbox@example.org",
    "GIT_COMMITTER_NAME": "Sandbox",
    "GIT_COMMITTER_EMAIL": "sandbox@example.org",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00",
}


def git_env() -> dict[str, str]:
    """For every git the sandbox runs (making the repositories, the builder's clone): no prompts, no
    credential helpers, no user or system configuration (an `insteadOf` or a hook there would
    change the result or send a clone elsewhere) — the same rules as the hub's `git ls-remote`."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.devnull,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "LC_ALL": "C",
    }


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env={**git_env(), **IDENTITY}, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_repositories(root: Path, sources: Path = REPOS) -> dict[str, dict[str, str]]:
    """A bare `<name>.git` under `root` for each directory of `sources`; returns name → commit."""
    root.mkdir(parents=True, exist_ok=True)
    made = {}
    for source in sorted(p for p in sources.iterdir() if p.is_dir()):
        bare = root / f"{source.name}.git"
        shutil.rmtree(bare, ignore_errors=True)
        with tempfile.TemporaryDirectory(prefix=f"repo-{source.name}-") as tmp:
            work = Path(tmp) / "work"
            shutil.copytree(source, work, ignore=shutil.ignore_patterns("__pycache__", ".git"))
            _git(work, "init", "-q", "-b", "main")
            _git(work, "add", "-A")
            _git(work, "commit", "-q", "-m", f"The {source.name} test repository")
            _git(work, "tag", "-a", "v1", "-m", "v1")
            _git(root, "clone", "-q", "--bare", str(work), str(bare))
        made[source.name] = _git(bare, "rev-parse", "main")
    return made


class GitCGI(BaseHTTPRequestHandler):
    """Runs git http-backend as a CGI program, as a web server in front of it would.

    Paths under /private/ answer 401 with a Basic challenge: a stand-in for a repository that asks
    for credentials, against which git must fail at once rather than prompt.
    """

    root: Path

    def _cgi(self) -> None:
        path, _, query = self.path.partition("?")
        if path.startswith("/private/"):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        length = int(self.headers.get("Content-Length") or 0)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length),
            "REMOTE_ADDR": self.client_address[0],
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
        }
        body = self.rfile.read(length) if length else b""
        out = subprocess.run([HTTP_BACKEND], input=body, env=env, capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n") if b"\r\n\r\n" in out else out.partition(b"\n\n")
        headers = [line.split(":", 1) for line in head.decode().splitlines() if ":" in line]
        status = next((value.strip() for name, value in headers if name.lower() == "status"), "200 OK")
        self.send_response(int(status.split()[0]))
        for name, value in headers:
            if name.lower() != "status":
                self.send_header(name, value.strip())
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _cgi

    def log_message(self, format: str, *args) -> None:
        if not getattr(self, "quiet", False):
            sys.stderr.write(f"{self.client_address[0]} {format % args}\n")


def server(root: Path, host: str, port: int, quiet: bool = False) -> ThreadingHTTPServer:
    handler = type("Handler", (GitCGI,), {"root": root, "quiet": quiet})
    return ThreadingHTTPServer((host, port), handler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.gitserver", description=__doc__)
    parser.add_argument("--root", required=True, type=Path, help="directory of bare repositories")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    httpd = server(args.root, args.host, args.port)
    print(f"serving {args.root} on http://{args.host}:{args.port}", flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()


def start(registry, state: Path, address: str) -> dict:
    """Make the test repositories and serve them as a daemon of the sandbox (`registry`: its
    procs.Registry); returns the settings the hub and tests read."""
    from . import controlplane
    from .procs import alive, wait_for

    root = state / "git"
    commits = make_repositories(root)
    port = controlplane.free_port()
    daemon = registry.start(
        "git",
        [
            sys.executable,
            "-m",
            "sandbox.gitserver",
            "--root",
            str(root),
            "--host",
            address,
            "--port",
            str(port),
        ],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    url = f"http://{address}:{port}"
    first = next(iter(commits), "")
    wait_for(
        lambda: controlplane._http_ok(f"{url}/{first}.git/info/refs?service=git-upload-pack"),
        timeout=30,
        what="the git server",
        give_up=lambda: None if alive(daemon) else f"it exited — see {daemon.log}",
    )
    repos = {
        name: {"url": f"{url}/{name}.git", "branch": "main", "tag": "v1", "commit": commit}
        for name, commit in commits.items()
    }
    return {"url": url, "repos": repos}
