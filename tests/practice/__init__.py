"""Tests of the practice domain (appliance/practice)."""
