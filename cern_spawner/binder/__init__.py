"""Binder-from-git launches: launch specs, image names, ref resolution, registry lookups.

Pure parsing lives in `refs` and `images`; `resolve` and `registry` talk to git servers and
registries. Launch handlers and build pods build on these (see docs/binder.md).
"""
