"""Helpers with one home each: atomic file writes and argument checks."""
