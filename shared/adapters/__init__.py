"""Adapters: everything that speaks to PostgreSQL, RabbitMQ, Redis or a model API."""
