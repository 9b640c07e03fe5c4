"""Experiments: one module per chapter, each with its config dataclass and driver."""
