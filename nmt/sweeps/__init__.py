"""Hydra jobs and sweeps: one job's result.json, a sweep's summary."""
