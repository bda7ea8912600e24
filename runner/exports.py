"""Files other tools read, written into each run directory beside results.json.

summary.csv (one row per memory size), JUnit XML of the thresholds (for CI systems) and a
Markdown summary (CI job summaries, pull-request comments).
"""

from __future__ import annotations

from pathlib import Path


def write_exports(results_path: Path) -> list[Path]:
    """Write the run's export files beside results_path; returns their paths."""
    return []  # filled in by issue 15 part 5
