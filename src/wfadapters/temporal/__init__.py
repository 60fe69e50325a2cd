"""The Temporal engine: each run is a Temporal workflow executing the same pure interpreter."""

__all__: list[str] = []
