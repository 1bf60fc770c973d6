"""Why a score may not be comparable with the paper's: the two labels every stage, report and
registry decision uses (plain strings, so a report imports them without the training stack).

- `PROXY_NOTE`: the gold was prepared with a proxy split (e.g. EBM PICO train carved from dev);
- `NOT_COMPARABLE`: the fine-tuning run was capped (training rows, evaluation rows, input length).
"""

PROXY_NOTE = "proxy, not comparable"
NOT_COMPARABLE = "not comparable"

__all__ = ["NOT_COMPARABLE", "PROXY_NOTE"]
