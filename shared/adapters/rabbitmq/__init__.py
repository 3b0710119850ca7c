"""The RabbitMQ adapter: the broker topology every process declares."""
