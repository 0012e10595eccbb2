"""The sandbox builder's and the node agent's image parts without a cluster: references, the
layer and manifest, tar member checks, unpacking, repo2docker detection, reproducible repositories."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from sandbox import gitserver
from sandbox.builder import __main__ as builder
from sandbox.builder import oci
from sandbox.builder.__main__ import BuildError, detect
from sandbox.nodeagent import images

pytestmark = pytest.mark.unit

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (
            "10.150.0.1:5000/binder/repo-abc123:" + "f" * 40,
            ("10.150.0.1:5000", "binder/repo-abc123", "f" * 40, None),
        ),
        ("localhost/x", ("localhost", "x", None, None)),
        ("registry.cern.ch/a/b/c:v1.2", ("registry.cern.ch", "a/b/c", "v1.2", None)),
        (f"host:5000/x@{DIGEST}", ("host:5000", "x", None, DIGEST)),
        ("jupyter/base-notebook:latest", None),
        ("sandbox", None),
        ("python:3.12", None),
    ],
    ids=[
        "sandbox-registry",
        "localhost",
        "nested",
        "digest",
        "docker-hub-name",
        "bare-name",
        "bare-with-tag",
    ],
)
def test_parse_reference(image, expected):
    ref = oci.parse_reference(image)
    assert (ref and (ref.host, ref.repository, ref.tag, ref.digest)) == expected


@pytest.mark.parametrize(
    "image",
    [
        "host:5000/Upper:tag",
        "host:5000/x:bad tag",
        "host:5000/x@sha256:short",
        "host:5000/a//b:t",
        "h.x/../y:t",
    ],
    ids=["uppercase-repository", "space-in-tag", "short-digest", "empty-component", "dotdot"],
)
def test_parse_reference_refuses(image):
    with pytest.raises(ValueError):
        oci.parse_reference(image)


def test_reference_prefers_the_digest():
    assert oci.parse_reference(f"h:1/x:t@{DIGEST}").reference == DIGEST
    assert oci.parse_reference("h:1/x").reference == "latest"


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (member("home/jovyan/README.md"), "README.md"),
        (member("./home/jovyan/sub/x.py"), "sub/x.py"),
        (member("home/jovyan", tarfile.DIRTYPE), ""),
        (member("etc/passwd"), None),
        (member("home/jovyan/link", tarfile.SYMTYPE, "sub/x.py"), "link"),
        (member("home/jovyan/sub/up", tarfile.SYMTYPE, "../README.md"), "sub/up"),
    ],
    ids=["file", "dot-prefix", "home-itself", "outside-home-skipped", "symlink-inside", "symlink-up-inside"],
)
def test_member_target(info, expected):
    assert images.member_target(info) == expected


@pytest.mark.parametrize(
    "info",
    [
        member("/home/jovyan/x"),
        member("home/jovyan/../../etc/passwd"),
        member("home/jovyan/dev", tarfile.CHRTYPE),
        member("home/jovyan/fifo", tarfile.FIFOTYPE),
        member("home/jovyan/hard", tarfile.LNKTYPE, "etc/shadow"),
        member("home/jovyan/abs", tarfile.SYMTYPE, "/etc/shadow"),
        member("home/jovyan/out", tarfile.SYMTYPE, "../../etc"),
        member("home/jovyan/sub/out", tarfile.SYMTYPE, "../.."),
    ],
    ids=[
        "absolute",
        "dotdot",
        "char-device",
        "fifo",
        "hard-link",
        "symlink-absolute",
        "symlink-out",
        "symlink-out-deep",
    ],
)
def test_member_target_refuses(info):
    with pytest.raises(images.UnsafeMember):
        images.member_target(info)


@pytest.fixture
def repository(tmp_path):
    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "README.md").write_text("# demo\n")
    (root / "sub" / "run.sh").write_text("#!/bin/sh\n")
    (root / "sub" / "run.sh").chmod(0o755)
    (root / "link").symlink_to("sub/run.sh")
    return root


def test_layer_holds_the_repository_under_home_reproducibly(repository):
    raw, layer = oci.repository_layer(repository, mtime=1767225600)
    assert (raw, layer) == oci.repository_layer(repository, mtime=1767225600)
    assert gzip.decompress(layer) == raw
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        entries = {m.name: m for m in tar}
    assert sorted(entries) == [
        "home",
        "home/jovyan",
        "home/jovyan/README.md",
        "home/jovyan/link",
        "home/jovyan/sub",
        "home/jovyan/sub/run.sh",
    ]
    assert entries["home/jovyan/sub/run.sh"].mode & 0o111
    assert entries["home/jovyan/link"].linkname == "sub/run.sh"
    assert {m.uid for name, m in entries.items() if name.startswith("home/jovyan")} == {1000}


def test_manifest_and_config_describe_the_blobs():
    labels = {"org.cern-spawner.commit": "c" * 40}
    config = oci.encode(oci.image_config("sha256:" + "d" * 64, labels, "2026-01-01T00:00:00Z"))
    manifest = oci.image_manifest(config, [b"layer"])
    assert manifest["mediaType"] == oci.MANIFEST_TYPE
    assert manifest["config"] == {
        "mediaType": oci.CONFIG_TYPE,
        "digest": oci.sha256(config),
        "size": len(config),
    }
    assert manifest["layers"] == [{"mediaType": oci.LAYER_TYPE, "digest": oci.sha256(b"layer"), "size": 5}]
    decoded = json.loads(config)
    assert decoded["config"]["WorkingDir"] == "/home/jovyan"
    assert decoded["config"]["Labels"] == labels
    assert decoded["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + "d" * 64]}


def test_unpack_round_trip(repository, tmp_path):
    _, layer = oci.repository_layer(repository)
    home = tmp_path / "home"
    home.mkdir()
    assert images.unpack(layer, home, (os.getuid(), os.getgid())) == 4
    assert (home / "README.md").read_text() == "# demo\n"
    assert os.access(home / "sub" / "run.sh", os.X_OK)
    assert os.readlink(home / "link") == "sub/run.sh"
    assert not (home / ".git").exists()


def tar_of(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_unpack_refuses_writing_through_an_earlier_symlink(tmp_path):
    layer = tar_of(
        (member("home/jovyan/d", tarfile.SYMTYPE, "."), b""),
        (member("home/jovyan/d/x"), b"through the link"),
    )
    home = tmp_path / "home"
    home.mkdir()
    with pytest.raises(images.UnsafeMember, match="symlink"):
        images.unpack(layer, home, (os.getuid(), os.getgid()))
    assert not (home / "x").exists()


def test_unpack_drops_special_mode_bits(tmp_path):
    info = member("home/jovyan/suid")
    info.mode = 0o4755
    home = tmp_path / "home"
    home.mkdir()
    images.unpack(tar_of((info, b"x")), home, (os.getuid(), os.getgid()))
    assert (home / "suid").stat().st_mode & 0o7777 == 0o755


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"registry": {"host": "10.1.0.1:5000", "url": "http://10.1.0.1:5000"}}, {"10.1.0.1:5000"}),
        ({}, set()),
        (None, set()),
    ],
    ids=["configured", "no-registry", "no-settings"],
)
def test_sandbox_registries(tmp_path, settings, expected):
    if settings is not None:
        (tmp_path / "sandbox.json").write_text(json.dumps(settings))
    assert images.sandbox_registries(tmp_path) == expected


@pytest.mark.parametrize(
    ("files", "buildpack"),
    [
        ({"requirements.txt": "six\n"}, "PythonBuildPack"),
        ({"environment.yml": "dependencies:\n  - python=3.11\n"}, "CondaBuildPack"),
        ({"README.md": "nothing to install\n"}, "PythonBuildPack"),
    ],
    ids=["requirements", "environment", "default"],
)
def test_detect(tmp_path, files, buildpack):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert detect(tmp_path) == buildpack


@pytest.mark.parametrize(
    ("files", "words"),
    [
        ({"environment.yml": "dependencies: [python=3.11\n"}, 'in "environment.yml"'),
        ({"runtime.txt": "python-2.5\n"}, "Python version 2.5"),
    ],
    ids=["unparseable-environment", "unsupported-python"],
)
def test_detect_refuses(tmp_path, files, words):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(BuildError, match="cannot build this repository") as failure:
        detect(tmp_path)
    assert words in str(failure.value)


def test_test_repositories_get_the_same_commits_everywhere(tmp_path):
    first = gitserver.make_repositories(tmp_path / "a")
    assert first == gitserver.make_repositories(tmp_path / "b")
    assert set(first) == {p.name for p in Path(gitserver.REPOS).iterdir() if p.is_dir()}


@pytest.mark.parametrize(
    ("content", "sleeps"),
    [(None, []), ("12", [5, 5, 2]), ("not a number", []), ("100000", [5] * 120)],
    ids=["no-file", "twelve-seconds", "unreadable", "capped"],
)
def test_a_repository_can_ask_for_a_long_build(tmp_path, capsys, content, sleeps):
    if content is not None:
        (tmp_path / builder.BUILD_SECONDS_FILE).write_text(content)
    slept: list[float] = []
    builder.stand_in_for_a_long_build(tmp_path, sleep=slept.append)
    assert slept == sleeps
    assert capsys.readouterr().out.count("stand-in for a long build") == len(sleeps)
