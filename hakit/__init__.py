"""hakit: active/passive high availability for a monitoring master and its databases."""

__version__ = "0.1.0"
