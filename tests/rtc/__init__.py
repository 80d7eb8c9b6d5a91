"""Tests of real-time communication (appliance/rtc)."""
