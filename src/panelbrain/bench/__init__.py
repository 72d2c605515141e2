"""Benchmarks run by ``panelbrain bench ...``: panelbrain against named peers in one process."""
