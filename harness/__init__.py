"""The process harness the tests and the benchmarks share: real taskrelay processes on resources
of their own.

`resources` makes a run's database, vhost and Redis db (and removes them), `servers` private
PostgreSQL and Redis servers a fault can stop, `processes`, `relay` and `worker` start the
processes and tell when they are ready, `system` a whole api + relay + worker, and `wait` the
deadline-bound waits they all use. `client`, `ws`, `generators`, `model_stub` and `fairness` are
what drives and observes a running system. It imports nothing from `tests`, so `bench/` does not
either.
"""
