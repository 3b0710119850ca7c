"""Test-only helpers: tasks made through the product's services, a relay ledger, a TCP proxy.

Starting processes and making a run's resources is the harness the benchmarks share (`harness/`).
"""
