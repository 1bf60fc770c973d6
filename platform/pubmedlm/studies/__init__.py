"""Studies: the paper's controlled comparisons as data (`spec`: the study file under
`pipelines/studies/`), their analysis (`analysis`: table, intervals from `blurb/compare.py`,
verdicts, the claim's outcome) and its rendering (`render`: Markdown, JSON, dot-and-whisker PNG)."""

from __future__ import annotations

from pubmedlm.studies.spec import Study, StudyError, load_study

__all__ = ["Study", "StudyError", "load_study"]
