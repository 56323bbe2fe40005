"""isobench: performance commits to a validated benchmark dataset."""

__version__ = "0.1.0"
