"""`taskrelay worker`: job messages from RabbitMQ become RQ jobs that generate content items.

The process layout (docs/worker.md): a supervisor (`services.worker.main`) runs the AMQP
consumer and the reconciler in one event loop and keeps N RQ worker processes
(`services.worker.rq_process`) alive. The consumer enqueues RQ jobs (`services.worker.enqueue`);
each RQ worker forks a work horse per job, and the job (`services.worker.jobs`) runs
`shared.service.generation.ContentJob` in a fresh event loop.

Nothing is imported here: an RQ process (and every other `taskrelay` command) imports only the
modules it runs.
"""
