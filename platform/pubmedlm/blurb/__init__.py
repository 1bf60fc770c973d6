"""BLURB: the task registry, format readers, converters and metrics."""
