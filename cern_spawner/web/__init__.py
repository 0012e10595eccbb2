"""Hub-side HTTP handlers of cern-spawner."""
