"""A finished run's directory copied to S3 (`--upload s3://bucket/prefix`, or $MEMSWEEP_UPLOAD).

Every file of the run directory goes to `s3://bucket/prefix/<run-id>/<its path in the run
directory>`: the run id is always appended, so runs sharing a prefix never overwrite each
other, and `aws s3 cp --recursive s3://bucket/prefix/<run-id>/ ./run` fetches one run as it
was on disk. The destination is checked before the run starts (`parse_s3_uri`: a mistake is
bad input, exit 2); the upload itself happens after the report is written, whatever the run's
outcome, and a failure is one line (`UploadFailed`) that leaves the local copy and the run's
exit code alone. Only `s3:PutObject` on the prefix is needed (README, "Keeping results").
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from runner.errors import BadInput, MemsweepError

UPLOAD_VARIABLE = "MEMSWEEP_UPLOAD"  # the default of --upload
SCHEME = "s3://"
# S3's naming rules for general purpose buckets: 3-63 characters, lowercase letters, digits,
# '.' and '-', a letter or digit at each end, no '..' (docs.aws.amazon.com, "Bucket naming
# rules").
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# Bounded so that an unreachable endpoint costs seconds, not botocore's default minutes
# (60 s connect timeout, retried): standard retries back off 1-2 s between 3 attempts.
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 60
MAX_ATTEMPTS = 3
# What a browser, `aws s3 cp` or a CI artifact viewer needs to show each file as itself.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".csv": "text/csv; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".xml": "application/xml",
    ".log": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"
FIRST = ("results.json", "report.html")  # sent before the rest
# The one action the upload uses, and where the README states the policy granting it.
POLICY_HINT = 'README, "Keeping results"'


class UploadFailed(MemsweepError):
    """An upload that did not finish: one line saying why and what to do. Never an exit code:
    the run's own outcome stands, and its local copy is kept."""


@dataclass(frozen=True)
class S3Destination:
    """Where runs go: a bucket and a prefix ("" or "a/b", no slash at either end)."""

    bucket: str
    prefix: str = ""

    def key(self, run_id: str, relative: str = "") -> str:
        """The object key of a file of run `run_id` (its path in the run directory)."""
        return "/".join(part for part in (self.prefix, run_id, relative) if part)

    def uri(self, run_id: str) -> str:
        """s3://bucket/prefix/<run-id>/: the run's folder, as `aws s3 cp --recursive` takes it."""
        return f"{SCHEME}{self.bucket}/{self.key(run_id)}/"

    def policy_resource(self) -> str:
        """The ARN an IAM policy grants s3:PutObject on."""
        return f"arn:aws:s3:::{self.bucket}/{self.prefix + '/' if self.prefix else ''}*"


@dataclass(frozen=True)
class Uploaded:
    """A run directory copied: where it is and how many files."""

    uri: str
    files: int

    def line(self) -> str:
        """The final line naming it: `uploaded: s3://bucket/prefix/<run-id>/ (11 files)`."""
        return f"uploaded: {self.uri} ({self.files} file{'' if self.files == 1 else 's'})"


def parse_s3_uri(text: str, *, given: str = "--upload") -> S3Destination:
    """s3://bucket or s3://bucket/prefix (a trailing slash alike); anything else is BadInput
    naming `given` (the option or the variable it came from)."""
    usage = "give s3://BUCKET or s3://BUCKET/PREFIX"
    if not text.startswith(SCHEME):
        raise BadInput(f"{given} {text!r}: not an S3 URI; {usage}")
    bucket, _, prefix = text[len(SCHEME) :].partition("/")
    if not bucket:
        raise BadInput(f"{given} {text!r}: no bucket; {usage}")
    if not BUCKET.fullmatch(bucket) or ".." in bucket:
        raise BadInput(
            f"{given} {text!r}: {bucket!r} is not an S3 bucket name (3-63 lowercase letters, "
            "digits, '.' and '-', a letter or digit at each end)"
        )
    prefix = prefix.strip("/")
    parts = prefix.split("/") if prefix else []
    if any(part in ("", ".", "..") for part in parts):
        raise BadInput(f"{given} {text!r}: the prefix has an empty, '.' or '..' part; {usage}")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in prefix):
        raise BadInput(f"{given} {text!r}: the prefix holds a control character")
    return S3Destination(bucket=bucket, prefix=prefix)


def content_type(path: Path) -> str:
    return CONTENT_TYPES.get(path.suffix.lower(), DEFAULT_CONTENT_TYPE)


def run_files(run_dir: Path) -> list[Path]:
    """Every regular file under the run directory: results.json and the report first, then its
    other files, then its folders' (what an upload cut short has sent is what matters most).
    Links are not followed: nothing outside the run directory leaves the machine."""
    found = [
        Path(folder, name)
        for folder, _, names in os.walk(run_dir)  # does not descend into linked folders
        for name in names
        if Path(folder, name).is_file() and not Path(folder, name).is_symlink()
    ]

    def order(path: Path) -> tuple[int, int, str]:
        relative = path.relative_to(run_dir)
        first = FIRST.index(relative.as_posix()) if relative.as_posix() in FIRST else len(FIRST)
        return len(relative.parts), first, relative.as_posix()

    return sorted(found, key=order)


def upload_run(run_dir: Path, destination: S3Destination) -> Uploaded:
    """Copy every file of `run_dir` to `destination`/<run-id>/, or raise UploadFailed."""
    import boto3
    from botocore.config import Config

    run_id = run_dir.name
    files = run_files(run_dir)
    sent = 0
    try:
        # A session of its own: the credential chain read now, not cached from earlier.
        client = boto3.session.Session().client(
            "s3",
            config=Config(
                connect_timeout=CONNECT_TIMEOUT_S,
                read_timeout=READ_TIMEOUT_S,
                retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
            ),
        )
        for path in files:
            relative = path.relative_to(run_dir).as_posix()
            with path.open("rb") as body:
                client.put_object(
                    Bucket=destination.bucket,
                    Key=destination.key(run_id, relative),
                    Body=body,
                    ContentType=content_type(path),
                )
            sent += 1
    except KeyboardInterrupt:  # a second Ctrl-C: stop copying, keep the run's own outcome
        raise UploadFailed(_failed(run_dir, destination, sent, len(files), "interrupted")) from None
    except Exception as exc:  # every way S3 or the network can refuse: one line, never a trace
        why = _why(exc, destination)
        if why is None:
            raise
        raise UploadFailed(_failed(run_dir, destination, sent, len(files), why)) from None
    return Uploaded(uri=destination.uri(run_id), files=len(files))


def _failed(run_dir: Path, destination: S3Destination, sent: int, total: int, why: str) -> str:
    where = destination.uri(run_dir.name)
    local = run_dir.resolve()
    return (
        f"upload to {where} failed ({sent} of {total} files sent): {why}; the run is kept in "
        f"{local}; copy it later with `aws s3 cp --recursive {local} {where}`"
    )


def _why(exc: Exception, destination: S3Destination) -> str | None:
    """The AWS error and what to do about it, or None for an exception that is a bug."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
    )

    bucket = destination.bucket
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "")) or "error"
        message = " ".join(str(error.get("Message", "")).split()) or str(exc)
        hint = _client_hint(code, destination)
        return f"{code}: {message} (bucket {bucket!r}){'; ' + hint if hint else ''}"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return (
            f"{type(exc).__name__}: {exc}; give credentials as the AWS CLI takes them "
            "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the pod's IAM role)"
        )
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError):
        return f"{type(exc).__name__}: {exc}; check the network and, if set, AWS_ENDPOINT_URL"
    if isinstance(exc, BotoCoreError):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError):  # a file of the run directory could not be read
        return f"{type(exc).__name__}: {exc}"
    return None


def _client_hint(code: str, destination: S3Destination) -> str:
    if code == "NoSuchBucket":
        return f"create bucket {destination.bucket!r} or correct the URI"
    if code in ("AccessDenied", "AllAccessDisabled", "Forbidden", "403"):
        return (
            f"these credentials need s3:PutObject on {destination.policy_resource()} "
            f"({POLICY_HINT})"
        )
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
        return "check the AWS credentials (or renew them)"
    return ""
