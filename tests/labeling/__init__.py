"""Tests against a real Label Studio server on loopback."""
