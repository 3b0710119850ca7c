"""Observability: structured logs, metrics, traces and spans, the probe server, redaction."""
