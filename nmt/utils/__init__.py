"""Shared plumbing: run-time settings (device, threads, precision, seed), user
errors, files (atomic write, UTF-8 reading), one-line text, memory."""
