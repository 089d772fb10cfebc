"""Tracker connections and integrations: the desired-state models and their cross-checks."""
