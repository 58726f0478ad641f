"""Chaos runs: buses in processes of their own on a throwaway PostgreSQL, under real faults.

``make chaos`` runs every scenario and prints events lost, stranded and
duplicated; ``tests/test_chaos.py`` runs the PostgreSQL-restart scenario, small,
in CI. See `chaos.harness`.
"""
