"""Training: packing, the one training loop, optimizer and schedule, checkpoints, Ray glue."""
