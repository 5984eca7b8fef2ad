"""Scoring beyond one machine: Ray Data batch scoring (ray_scoring.py, the `ray` extra)."""
