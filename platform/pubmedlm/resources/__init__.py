"""Packaged data files (the built-in source catalog)."""
