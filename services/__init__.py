"""The taskrelay processes: the HTTP API and gateway, the relay, and the worker."""
