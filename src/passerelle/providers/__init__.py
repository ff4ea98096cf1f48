"""Upstream providers: one module per vendor, the HTTP transport, and the price table."""
