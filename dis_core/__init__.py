"""DIS: Dynamic Identity Signatures from facial dynamics in video."""

__version__ = "0.1.0"
