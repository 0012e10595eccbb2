"""Growing GPU node groups on demand: capacity, a pure planner, backends, and the controller."""
