"""Per-profile culling: idle and old servers stopped by the hub, users warned first.

- `decide`: which servers are due, and which are close (notices), from a frozen view of the servers,
  the catalog and the time (no I/O);
- `service`: the culler, an asyncio task in the hub process acting through the hub's REST API with a
  token of its own, scoped to what it needs;
- `handlers`: the users' side: notices as JSON, "Keep" recording activity, the home page's banner.
"""
