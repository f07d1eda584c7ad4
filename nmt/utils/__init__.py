"""Shared plumbing: run-time settings (device, threads, precision, seed), user
errors, files, memory."""
