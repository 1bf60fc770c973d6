"""Users' own biomedical tasks, declared in task files (`tasks.files` in params) and read into the
prepared form of a BLURB dataset: `schema` (the task file), `readers` (the formats), `prepare`
(a task's splits, label set and registry row)."""
