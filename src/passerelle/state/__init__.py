"""Shared state for budgets, rate limits and the response cache: in this process, or in Redis
when several gateway instances serve the same people."""
