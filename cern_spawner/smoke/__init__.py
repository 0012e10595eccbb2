"""`cern-spawner smoke`: every profile started through the hub's REST API as a dedicated user,
timed to its first answer, stopped, and reported as JSON, Markdown and a static HTML page
(docs/operator/smoke.md). run.py holds the logic, hub.py the REST client, report.py the outputs,
command.py the command line's wiring."""
