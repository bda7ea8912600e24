"""Secrets never leave in an output: what counts as one, and how it is shown instead."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import yaml

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


# --- a scenario's secrets: never in results.json, the report, or the terminal ----------------

# The scenario text is redacted by editing the YAML; past this size (the scenario loader
# refuses far smaller files) it is left out rather than parsed again.
MAX_SCENARIO_TEXT = 4 * 1024 * 1024
SCENARIO_TEXT_WITHHELD = (
    "# not shown: this scenario file names secrets that memsweep could not blank out of its\n"
    "# text; results.json's `scenario` holds the scenario as it ran, secrets redacted.\n"
)


def _secret_here(parent: str | None, key: object) -> bool:
    """Secret fields of a scenario: the target's (api_key) and any `headers` mapping's."""
    return parent in ("target", "headers") and secret_name(key)


def redact_scenario(document: Any, parent: str | None = None) -> Any:
    """A copy of a scenario (as JSON data) with its secret values replaced by REDACTED."""
    if isinstance(document, dict):
        return {
            key: REDACTED
            if _secret_here(parent, key) and value is not None
            else redact_url(value)
            if parent == "target" and key == "url" and isinstance(value, str)
            else redact_scenario(value, key if isinstance(key, str) else None)
            for key, value in document.items()
        }
    if isinstance(document, list):
        return [redact_scenario(item, parent) for item in document]
    return document


def _secret_nodes(root: yaml.Node) -> list[yaml.ScalarNode]:
    """The scalar nodes of a composed scenario that hold secrets (aliases visited once)."""
    found: dict[int, yaml.ScalarNode] = {}
    seen: set[int] = set()
    pending: list[tuple[yaml.Node, str | None]] = [(root, None)]
    while pending:
        node, parent = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else None
                if name == "<<":  # a merge key: its mappings are this mapping's
                    pending.append((value, parent))
                elif _secret_here(parent, name) and isinstance(value, yaml.ScalarNode):
                    found[id(value)] = value
                else:
                    pending.append((value, name))
        elif isinstance(node, yaml.SequenceNode):
            pending.extend((item, parent) for item in node.value)
    return list(found.values())


_NODE_PROPERTIES = re.compile(r"^(?:[&!]\S*\s+)*")  # an anchor or tag before a scalar


_URL_IN_TEXT = re.compile(r"https?://[^\s'\"]+")


def redact_scenario_text(text: str) -> str:
    """The scenario file's text with secret fields and URL credentials not shown."""
    return _redact_secret_fields(_URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text))


def _redact_secret_fields(text: str) -> str:
    """The scenario file's text with its secret values replaced by "set, not shown".

    Edited in place (comments and layout stay); if the edit cannot be shown to have removed
    every secret, the text is withheld instead.
    """
    if not SECRET_NAME.search(text):
        return text
    if len(text) > MAX_SCENARIO_TEXT:
        return SCENARIO_TEXT_WITHHELD
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        nodes = _secret_nodes(root) if root is not None else []
        if not nodes:
            return text
        secrets = {node.value for node in nodes if node.value != REDACTED}
        edited = text
        for node in sorted(nodes, key=lambda n: n.start_mark.index, reverse=True):
            start, end = node.start_mark.index, node.end_mark.index
            span = edited[start:end]
            prefix = _NODE_PROPERTIES.match(span)
            keep = prefix.group(0) if prefix else ""
            newline = "\n" if span.endswith("\n") else ""
            edited = f'{edited[:start]}{keep}"{REDACTED}"{newline}{edited[end:]}'
        # Proof, not hope: the edited text parses, every secret field reads "set, not
        # shown", and no secret value is left anywhere (in a comment, a URL, an anchor).
        again = yaml.compose(edited, Loader=yaml.SafeLoader)
        if again is None or any(node.value != REDACTED for node in _secret_nodes(again)):
            return SCENARIO_TEXT_WITHHELD
        rest = edited.replace(f'"{REDACTED}"', "")
        if any(secret.strip() and secret in rest for secret in secrets):
            return SCENARIO_TEXT_WITHHELD
        return edited
    except (yaml.YAMLError, RecursionError, ValueError):
        return SCENARIO_TEXT_WITHHELD
