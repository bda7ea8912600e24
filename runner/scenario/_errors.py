"""Scenario errors in memsweep's words: pydantic's ValidationErrors as one plain line each.

_models holds the format; _reading and _overrides check a file and the command line against it.
This module turns what the models refuse into `file:line: field: what is wrong, got value`
lines, with a did-you-mean for a misspelt key or value and an example of what a key takes. It
walks the models to find which keys belong where (it imports them; they import nothing of it).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from runner.redaction import REDACTED, redact_headers, secret_name
from runner.scenario._models import HANDLER_PATTERN, TARGET_KINDS, Scenario


def _without_tags(location: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Drop a discriminated union's tag, which pydantic puts in the path after its key."""
    if len(location) > 1 and location[1] in _union_tags().get(str(location[0]), ()):
        return (location[0], *location[2:])
    return location


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]{1,60}$|^\(a key\)$")


def field_path(location: tuple[int | str, ...]) -> str:
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.match(str(part)):
            text += f".{part}" if text else str(part)
        else:  # a key with dots, spaces or newlines is shown quoted, so the line stays one
            text += f"[{_shown(str(part))}]"
    if len(text) > 80:  # 64 levels of [0] say nothing more than their start does
        text = text[:77] + "..."
    return text or "(top level)"


# One problem, one line: a message never spans lines nor fills the screen.
MAX_MESSAGE_CHARS = 400


def one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def _without_secrets(location: tuple[Any, ...], value: Any) -> Any:
    """An offending value as it may be printed: a key or a secret header is not echoed."""
    if any(secret_name(part) for part in location):
        return REDACTED
    if location and location[-1] == "headers" and isinstance(value, dict):
        return redact_headers(value)
    return value


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


# A check across fields names the field it blames first: "sweep.warmup_s: ..."
_BLAMED_FIELD = re.compile(r"^(?P<field>[a-z_]+(?:\.[a-z_]+)+): (?P<message>.*)$", re.DOTALL)


def _blamed(message: str, location: tuple[int | str, ...]) -> re.Match[str] | None:
    """The field a check across fields blames, when it lies under the model that checked
    (the scenario's own checks, or a section's: "sweep.repeats: ...")."""
    blamed = _BLAMED_FIELD.match(message)
    if blamed is None:
        return None
    field = tuple(blamed["field"].split("."))
    return blamed if field[: len(location)] == tuple(str(part) for part in location) else None


# --- errors in memsweep's words ----------------------------------------------------------------

# A key's suffix says its unit (the format's own naming rule): (suffix, symbol, what a number
# of it is called).
_UNITS = (
    ("_per_s", " per second", " per second"),
    ("_mb", " MB", " of MB"),
    ("_ms", " ms", " of milliseconds"),
    ("_s", " s", " of seconds"),
)


def pattern_words(pattern: str) -> str | None:
    """What a pattern of the format asks for, said plainly (the pattern itself stays in the
    JSON Schema); None for a pattern without words."""
    return {
        r"^https?://\S+$": "must be an http:// or https:// URL without spaces",
        r"^(/|https?://)": "must start with / (a path on the target's host) or http(s):// (a URL)",
        HANDLER_PATTERN: "must be module.function, as Lambda's Handler setting names it "
        "(e.g. handler.lambda_handler)",
    }.get(pattern)


def _unit(location: tuple[int | str, ...], *, noun: bool = False) -> str:
    name = next((part for part in reversed(location) if isinstance(part, str)), "")
    for suffix, symbol, called in _UNITS:
        if name.endswith(suffix):
            return called if noun else symbol
    return ""


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation holds: itself, a list's items, a union's members."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in models_in(arg)]


@functools.cache
def _union_tags() -> dict[str, frozenset[str]]:
    """The tags of each top-level section that is a union of models (target kinds, load
    models), read from the models themselves."""
    return {
        name: frozenset(tag for model in models_in(field.annotation) for tag in tags_of(model))
        for name, field in Scenario.model_fields.items()
        if len(models_in(field.annotation)) > 1
    }


def tags_of(model: type[BaseModel]) -> tuple[str, ...]:
    """A union member's tag values: its `kind` or `model` literal."""
    for key in ("kind", "model"):
        if key in model.model_fields:
            return tuple(str(value) for value in get_args(model.model_fields[key].annotation))
    return ()


def _models_at(location: tuple[int | str, ...]) -> list[type[BaseModel]]:
    """The model(s) whose keys belong at `location` (pydantic's, a union's tag included)."""
    candidates: list[type[BaseModel]] = [Scenario]
    for part in location:
        if isinstance(part, int):  # an item of a list: the list's model
            continue
        tagged = [model for model in candidates if part in tags_of(model)]
        holders = [model for model in candidates if part in model.model_fields]
        if len(candidates) > 1 and tagged:  # pydantic names the union member it tried
            candidates = tagged
        elif holders:
            candidates = models_in(holders[0].model_fields[str(part)].annotation)
        else:
            candidates = []
        if not candidates:
            break
    return candidates


def _sections() -> dict[str, list[str]]:
    """Every key of the format -> the sections it belongs in ("sweep", "target (kind: aws)",
    "load.stages[]")."""
    where: dict[str, list[str]] = {}

    def walk(model: type[BaseModel], path: str, label: str) -> None:
        for name, field in model.model_fields.items():
            where.setdefault(name, []).append(label)
            members = models_in(field.annotation)
            inner = f"{path}.{name}" if path else name
            if get_origin(bare(field.annotation)) is list:
                inner += "[]"
            for member in members:
                walk(member, inner, member_label(inner, member, members))

    walk(Scenario, "", "the top level")
    # A key a section repeats inside itself (sweep's memory_mb in sweep.points) is named once,
    # at the outer section.
    return {
        key: [
            label
            for label in labels
            if not any(label.startswith(other + ".") for other in labels if other != label)
        ]
        for key, labels in where.items()
    }


def bare(annotation: Any) -> Any:
    """An annotation without its Annotated[...] wrapping."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def member_label(path: str, member: type[BaseModel], members: list[type[BaseModel]]) -> str:
    """A section's name: its path, and for a union's member the tag that picks it
    ("target (kind: aws)")."""
    tags = tags_of(member) if len(members) > 1 else ()
    key = "kind" if "kind" in member.model_fields else "model"
    return f"{path} ({key}: {tags[0]})" if tags else path


# Words other load tools (Locust, k6, Artillery, Power Tuning) use for a key of this format.
_SYNONYMS = {
    "json": "body",
    "data": "body",
    "payload": "body",
    "url": "path",
    "uri": "path",
    "endpoint": "path",
    "status": "expect_status",
    "status_code": "expect_status",
    "vus": "users",
    "rps": "rate_per_s",
    "rate": "rate_per_s",
    "arrival_rate": "rate_per_s",
    "spawn_rate": "ramp_s",
    "wait_time": "think_time",
    "memory": "memory_mb",
    "memory_size": "memory_mb",
    "memorysize": "memory_mb",
    "power_values": "memory_mb",
    "num": "repeats",
    "iterations": "repeats",
    "warmup": "warmup_s",
    "duration": "duration_s",
}


def flow(value: Any) -> str:
    """A value as YAML flow text, the way a scenario would hold it: {users: 3, duration_s: 30}."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {flow(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:g}"
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z][A-Za-z0-9_./ -]*", value):
        return value
    return json.dumps(value)


def _field_info(location: tuple[int | str, ...]) -> Any:
    """The FieldInfo of the key at `location`, if the format has one."""
    if not location or not isinstance(location[-1], str):
        return None
    for model in _models_at(location[:-1]):
        if location[-1] in model.model_fields:
            return model.model_fields[location[-1]]
    return None


def _example(location: tuple[int | str, ...]) -> str:
    field = _field_info(location)
    if field is None or not field.examples:
        return ""
    return f" (e.g. {location[-1]}: {flow(field.examples[0])})"


def _one_of(values: list[str]) -> str:
    quoted = [f"`{value}`" for value in values]
    if not quoted:
        return "one of the allowed values"
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


# Values are short words: "FETCH" is not a typo of "PATCH" (0.6), "opne" is one of "open" (0.75).
VALUE_CUTOFF = 0.7


def _close(word: Any, choices: list[str], *, cutoff: float = 0.6) -> str | None:
    """The choice a typo most likely meant (case aside), if one is close."""
    import difflib

    if not isinstance(word, str) or not word:
        return None
    lowered = {choice.lower(): choice for choice in choices}
    found = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=cutoff)
    return lowered[found[0]] if found else None


def _unknown_key(location: tuple[int | str, ...]) -> tuple[str, str | None]:
    """'unknown key (did you mean memory_mb?)' and the key it probably meant, when that key
    belongs at the same place (a typo, or another tool's word for it)."""
    key = str(location[-1])
    models = _models_at(location[:-1])
    keys = [name for model in models[:1] for name in model.model_fields]
    synonym = _SYNONYMS.get(key.lower())
    meant = _close(key, keys) or (synonym if synonym in keys else None)
    if meant is not None:
        return f"unknown key (did you mean {meant}?)", meant
    sections = _sections()
    if key in sections:
        return f"unknown key here ({key} belongs in {' or '.join(sections[key])})", None
    elsewhere = _close(key, list(sections)) or synonym
    if elsewhere in sections:
        where = " or ".join(sections[elsewhere])
        return f"unknown key (did you mean {elsewhere}, in {where}?)", None
    if keys:
        return f"unknown key (keys here: {', '.join(keys)})", None
    return "unknown key", None


def _wrong_type_of_section(location: tuple[int | str, ...], raw: tuple[int | str, ...]) -> str:
    """What a mapping-valued key expects, said with its keys."""
    name = location[-1] if location else ""
    if name == "target" and len(location) == 1:
        return (
            f"expected {', '.join(f'`{kind}`' for kind in TARGET_KINDS)}, an http(s):// URL or "
            "a mapping with kind: and that kind's keys (e.g. {kind: aws, stage: prod})"
        )
    if name == "load" and len(location) == 1:
        return (
            "expected a mapping: {stages: [{users: 10, duration_s: 60}]} for the closed model "
            "or {model: open, rate_per_s: 50, duration_s: 60} for the open one"
        )
    models = _models_at(raw)
    if len(models) == 1:
        return f"expected a mapping with keys {', '.join(models[0].model_fields)}"
    return "expected a mapping (key: value)"


def _plain(item: Any, clean: tuple[int | str, ...]) -> str:
    """One pydantic error in memsweep's words, without its location (`clean`: tags dropped)."""
    raw = tuple(item["loc"])
    kind = item["type"]
    ctx = item.get("ctx") or {}
    value = item.get("input")
    unit = _unit(clean)
    if kind == "missing":
        return "is required" + _example(raw)
    if kind == "extra_forbidden":
        return _unknown_key(raw)[0]
    if kind in {"model_type", "model_attributes_type", "dict_type", "mapping_type"}:
        return _wrong_type_of_section(clean, raw)
    if kind in {"list_type", "tuple_type", "iterable_type"}:
        return "expected a list, e.g. [a, b]"
    if kind in {"int_from_float", "int_type", "int_parsing", "int_parsing_size"}:
        return "expected a whole number" + _unit(clean, noun=True)
    if kind in {"float_type", "float_parsing"}:
        return "expected a number" + _unit(clean, noun=True)
    if kind == "finite_number":
        return "must be a finite number"
    if kind == "string_type":
        quote = " (quote it to use it as text)" if isinstance(value, int | float) else ""
        return "expected text" + quote
    if kind in {"bool_type", "bool_parsing"}:
        return "expected true or false"
    if kind in {"literal_error", "enum"}:
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        meant = _close(value, choices, cutoff=VALUE_CUTOFF)
        hint = f" (did you mean {meant}?)" if meant is not None else ""
        return f"must be {_one_of(choices)}{hint}"
    if kind == "union_tag_invalid":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        meant = _close(ctx.get("tag"), choices, cutoff=VALUE_CUTOFF)
        hint = f" (did you mean {meant}?)" if meant is not None else ""
        return f"must be {_one_of(choices)}{hint}"
    bounds = {
        "greater_than": ("more than", "gt"),
        "greater_than_equal": ("at least", "ge"),
        "less_than": ("less than", "lt"),
        "less_than_equal": ("at most", "le"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {_number(ctx.get(key))}{unit}"
    if kind == "too_short":
        count = ctx.get("min_length", 1)
        return f"must hold at least {count} item{'s' if count != 1 else ''}"
    if kind == "too_long":
        return f"must hold at most {ctx.get('max_length')} items"
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else str(item["msg"])
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        return pattern_words(str(ctx.get("pattern"))) or str(item["msg"])
    return str(item["msg"]).removeprefix("Value error, ")


def _got(item: Any, clean: tuple[int | str, ...]) -> str:
    if item["type"] in {"missing", "extra_forbidden"}:
        return ""
    if item["type"] == "value_error" and isinstance(item["input"], dict):
        return ""  # a check across a mapping's keys: its message names them
    return f", got {_shown(_without_secrets(clean, item['input']))}"


def _located(item: Any) -> tuple[tuple[int | str, ...], str]:
    """An error's field (tags dropped; a bad tag blames its own key) and its plain message."""
    location = tuple(item["loc"])
    clean = _without_tags(location)
    if item["type"] == "union_tag_invalid":
        key = "kind" if clean[:1] == ("target",) else "model"
        clean = (*clean, key)
        return clean, f"{_plain(item, clean)}, got {_shown(item.get('ctx', {}).get('tag'))}"
    return clean, _plain(item, clean) + _got(item, clean)


def explain(
    error: ValidationError, *, path: str, line_of: Callable[[tuple[int | str, ...]], int]
) -> list[str]:
    """The document's errors in memsweep's words, one line each, in the order of the file's
    lines: `x.yaml:12: sweep.memory_mb[0]: must be at least 128 MB, got 100`. `line_of` gives
    the line of the deepest part of a field the document holds."""
    out: list[tuple[int, str]] = []
    items = error.errors()
    # A misspelt key explains the required key it was meant to be: say it once.
    meant = set()
    for item in items:
        if item["type"] == "extra_forbidden":
            location = tuple(item["loc"])
            guess = _unknown_key(location)[1]
            if guess is not None:
                meant.add((*location[:-1], guess))
    for item in items:
        location = tuple(item["loc"])
        if item["type"] == "missing" and location in meant:
            continue
        clean = _without_tags(location)
        message = item["msg"].removeprefix("Value error, ")
        blamed = _blamed(message, clean)
        if blamed:
            field = tuple(blamed["field"].split("."))
            line = line_of(field)
            out.append((line, one_line(f"{path}:{line}: {blamed['field']}: {blamed['message']}")))
            continue
        clean, text = _located(item)
        line = line_of(clean)
        out.append((line, one_line(f"{path}:{line}: {field_path(clean)}: {text}")))
    return [text for _, text in sorted(out, key=lambda pair: pair[0])]


def _option_for(field: tuple[int | str, ...], given: dict[str, str]) -> str | None:
    """The option that set `field` of the document, if one did."""
    keys = {str(part) for part in field}
    wanted = {
        "--memory": field[:2] == ("sweep", "memory_mb"),
        "--repeats": field[:2] == ("sweep", "repeats"),
        "--users": field[:1] == ("load",) and "users" in keys,
        "--rate": field[:1] == ("load",) and "rate_per_s" in keys,
        "--duration": field[:2] == ("sweep", "warmup_s")
        or (field[:1] == ("load",) and bool(keys & {"duration_s", "ramp_s"})),
    }
    return next((option for option, hit in wanted.items() if hit and option in given), None)


def shown_option(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def explain_override(error: ValidationError, given: dict[str, str]) -> str:
    """An override's failure in the option's name: `--memory 100: must be at least 128 MB`."""
    found: list[str] = []
    for item in error.errors():
        clean, text = _located(item)
        message = str(item["msg"]).removeprefix("Value error, ")
        blamed = _blamed(message, clean)
        if blamed:  # a check across fields (the warm-up against the load's length)
            clean = tuple(blamed["field"].split("."))
            text = f"{blamed['field']}: {blamed['message']}"
        option = _option_for(clean, given)
        if option is not None:
            return one_line(f"{option} {shown_option(given[option])}: {text}")
        found.append(f"{field_path(clean)}: {text}")
    options = " ".join(f"{option} {shown_option(value)}" for option, value in given.items())
    return one_line(f"{options}: {found[0]}")


def explain_target(error: ValidationError, *, kind: str, flags: tuple[str, ...]) -> str:
    """A target set on the command line that its model refuses, in the flag's name when a flag
    (`flags`) set the field: `--target url: --url: must be an http:// or https:// URL ...`."""
    first = error.errors()[0]
    item = {**first, "loc": ("target", *first["loc"])}  # the field as the YAML names it
    clean, message = _located(item)
    where = field_path(clean[1:])
    flag = f"--{where}" if where in flags else f"target.{where}"
    return f"--target {kind}: {flag}: {message}"
