"""The Redis adapter: the model's shared in-flight limiter."""
