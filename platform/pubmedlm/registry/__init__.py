"""The MLflow Model Registry side: the promotion gate and registration (`gate`), serving a
registered task model (`serving`) and its pyfunc entry point logged as code (`pyfunc_model`).
"Registry" in this package always means MLflow's; the BLURB task table is `blurb.tasks`."""
