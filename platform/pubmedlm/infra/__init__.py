"""Plumbing every stage shares: experiment tracking and lineage (`tracking`, the only MLflow
importer outside the model registry), the Ray runtime (`ray_runtime`) and external sources with
their sha256 checks (`sources`). Nothing here knows about BLURB, corpora or models."""
