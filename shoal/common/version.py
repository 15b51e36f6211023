"""The version of shoal, as coordinators and workers report it in their heartbeats."""

__version__ = "0.1.0"
