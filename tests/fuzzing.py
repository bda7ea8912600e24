"""How many examples the fuzz tests draw: their CI counts, times $MEMSWEEP_FUZZ_SCALE.

CI draws a few random examples a run (the suite has a 25-minute budget): enough to catch a
common fault, and on 2026-12-06 one rare one. A long run finds the rare ones before CI does:
`MEMSWEEP_FUZZ_SCALE=320 python -m pytest tests/test_hostile_files.py -k any_value` draws
8,000 damaged results files (about 6 minutes here); such a run found three faults that 25 a
run had not.
"""

from __future__ import annotations

import os

FUZZ_SCALE_ENV = "MEMSWEEP_FUZZ_SCALE"
MAX_SCALE = 10_000


def fuzz_scale() -> int:
    """The multiplier from the environment: 1 unless set; a whole number 1 to 10,000, else a
    clear error when the tests are collected (a typo must not quietly run the short fuzz)."""
    given = os.environ.get(FUZZ_SCALE_ENV, "").strip()
    if not given:
        return 1
    if not given.isdigit() or not 1 <= int(given) <= MAX_SCALE:
        raise ValueError(
            f"{FUZZ_SCALE_ENV}={given!r}: expected a whole number from 1 to {MAX_SCALE:,}"
        )
    return int(given)


def examples(ci_count: int) -> int:
    """The examples a fuzz test draws: its CI count, scaled."""
    return ci_count * fuzz_scale()
