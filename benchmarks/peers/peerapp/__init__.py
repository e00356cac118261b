"""The example project's blog models, for every library of the peer comparison (see models.py)."""
