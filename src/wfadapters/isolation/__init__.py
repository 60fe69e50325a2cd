"""Isolated expression evaluation: a pool of pre-started worker processes for untrusted authors."""

__all__: list[str] = []
