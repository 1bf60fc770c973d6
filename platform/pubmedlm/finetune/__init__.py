"""Fine-tuning on BLURB: task encoding (`features`), tagging schemes (`tagging`), the four heads
(`heads`), training and prediction on the platform's one loop (`fit`), and the Ray Tune + Optuna
search (`search`). Everything is driven by the task table; nothing here is per dataset.
"""
