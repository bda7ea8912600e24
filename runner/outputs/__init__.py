"""What a run leaves and shows: the HTML report, the files other tools read, and the live
terminal. Everything here reads results.json's `Results` and the analysis of it.

- `_report`: results.json → one self-contained HTML file (`templates/comparison.html.j2`)
- `_exports`: summary.csv, junit.xml and summary.md beside results.json
- `_tables`: what both show (figures as text, the memory × axes matrix, the atomic write)
- `_progress`: a live area on a terminal, plain lines otherwise
- `_upload`: the run directory copied to S3 (`--upload s3://bucket/prefix`)
"""

from runner.outputs._exports import (
    write_exports,
)
from runner.outputs._progress import (
    Event,
    Note,
    Phase,
    Planned,
    Progress,
    StepDone,
)
from runner.outputs._report import (
    report_json,
    write_report,
)
from runner.outputs._upload import (
    UPLOAD_VARIABLE,
    S3Destination,
    Uploaded,
    UploadFailed,
    parse_s3_uri,
    upload_run,
)

__all__ = [
    "UPLOAD_VARIABLE",
    "Event",
    "Note",
    "Phase",
    "Planned",
    "Progress",
    "S3Destination",
    "StepDone",
    "UploadFailed",
    "Uploaded",
    "parse_s3_uri",
    "report_json",
    "upload_run",
    "write_exports",
    "write_report",
]
