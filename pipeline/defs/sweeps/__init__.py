"""Parameter sweeps: a request (Launchpad or YAML file) planned, run in chunks on separate steps, merged with PBO, deflated Sharpe and SPA; each sweep has a home in `sweep_runs`."""
