"""Benchmarks behind ``privfin bench ...`` (each returns one JSON-able dict)."""
