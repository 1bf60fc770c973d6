"""BLURB: the task table, format readers, converters and metrics."""
