"""Passerelle: a self-hosted, governed AI gateway."""

__version__ = "0.1.0"
