"""Capacity, cost and simulation models of the deployed system (pure Python, no AWS)."""
