"""`cern-spawner smoke`'s wiring: arguments in, a round run against the hub, three files out."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
from pathlib import Path

import aiohttp

from ..catalog import CatalogError, load_catalog
from . import report
from .hub import HubUnreachable, RestHub
from .run import exit_code, smoke

DEFAULT_TIMEOUT = 600.0  # seconds, for a profile without a start_timeout of its own


def plan(catalog_paths: list[str], chosen: list[str]) -> list[tuple[str, float]]:
    """(slug, timeout s) of each profile to smoke, in catalog order; ValueError naming unknown slugs."""
    profiles = load_catalog(catalog_paths).profiles
    known = {p.slug for p in profiles}
    unknown = [slug for slug in chosen if slug not in known]
    if unknown:
        raise ValueError(f"no such profile in the catalog: {', '.join(map(repr, unknown))}")
    return [
        (p.slug, float(p.start_timeout or DEFAULT_TIMEOUT))
        for p in profiles
        if not chosen or p.slug in chosen
    ]


async def _round(args: argparse.Namespace, profiles: list[tuple[str, float]], token: str):
    async with aiohttp.ClientSession() as session:
        hub = RestHub(session, args.url, token, args.user)
        await hub.stop()  # a server left by an interrupted round would refuse the first start
        return await smoke(hub, profiles)


def run(args: argparse.Namespace) -> int:
    try:
        token = Path(args.token_file).read_text().strip()
    except OSError as e:
        print(f"smoke: cannot read the token file {args.token_file}: {e.strerror}", file=sys.stderr)
        return 1
    try:
        profiles = plan(args.catalog, args.profile or [])
    except CatalogError as e:
        print(f"smoke: the catalog is invalid: {e}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"smoke: {e}", file=sys.stderr)
        return 1
    began = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    try:
        rows = asyncio.run(_round(args, profiles, token))
    except HubUnreachable as e:
        print(f"smoke: the hub could not be asked: {e}", file=sys.stderr)
        return 1
    about = {"hub": args.url, "user": args.user, "started": began, **dict(args.label or [])}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "smoke.json").write_text(report.to_json(rows, about))
    (out / "smoke.md").write_text(report.to_markdown(rows, about))
    (out / "smoke.html").write_text(report.to_html(rows, about))
    print(report.to_markdown(rows, about), end="")
    return exit_code(rows)
