"""Test helpers: isolated resources on the shared servers, real processes, waits, a TCP proxy."""
