"""Fake upstream servers that speak each provider's exact wire format, for tests, benchmarks and
the offline demo. Every answer they give is labelled fake; none of them ever calls a real provider.
"""
