"""Configuration: typed settings, read once from the environment, one dataclass per concern."""
