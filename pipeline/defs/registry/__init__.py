"""The strategy registry: which strategies run, with which parameters, and their latest verdicts."""
