"""Secrets never leave in an output: what counts as one, and how it is shown instead."""

from __future__ import annotations

import re
import urllib.parse

REDACTED = "set, not shown"
# A header or field whose name says it carries a credential. The `_env` and `_file` fields
# name where a key comes from (a variable, a path), not the key.
SECRET_NAME = re.compile(
    r"auth|token|secret|passw|cookie|session|credential|signature|api[-_]?key|private", re.I
)
_SOURCE_NAME = re.compile(r"_(env|file)$", re.I)


def secret_name(name: object) -> bool:
    """True for a header or field name that carries a credential (x-api-key, Cookie, ...)."""
    return (
        isinstance(name, str) and bool(SECRET_NAME.search(name)) and not _SOURCE_NAME.search(name)
    )


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    """Headers to show: those whose name looks secret have their value replaced."""
    return {name: REDACTED if secret_name(name) else value for name, value in headers.items()}


# In a URL the marker must stay URL-shaped: the host and path still say where the run went.
URL_REDACTED = "not-shown"


def redact_url(url: str) -> str:
    """The URL with its user-info and secret-looking query values replaced (`?token=...`)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{URL_REDACTED}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        if any(secret_name(name) for name, _ in pairs):
            query = urllib.parse.urlencode(
                [(name, URL_REDACTED if secret_name(name) else value) for name, value in pairs]
            )
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))
