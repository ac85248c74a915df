"""Honua: the system of record of the build orchestrator (licensing, builds, intake)."""
