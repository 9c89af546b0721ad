"""Backends: where tasks are queued and how they run."""
