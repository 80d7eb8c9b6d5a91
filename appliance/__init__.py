"""Sprechzimmer: a self-hosted video consultation appliance for medical practices."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sprechzimmer")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
