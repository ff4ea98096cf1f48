"""Canonical values every layer shares: principals, request context, usage."""
