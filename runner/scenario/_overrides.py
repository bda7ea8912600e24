"""The command line's changes to a scenario: the target flags (`with_target`) and the quick
tries (`with_overrides`: --memory, --duration, --users, …), checked as the file is."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import (
    TypeAdapter,
    ValidationError,
)

from runner.errors import BadInput
from runner.scenario._errors import (
    explain_override,
    explain_target,
    shown_option,
)
from runner.scenario._models import (
    AwsTarget,
    ClosedLoad,
    LocalTarget,
    OpenLoad,
    Scenario,
    Target,
    UrlTarget,
)

TARGET_FLAGS = {"local": (), "aws": ("stack", "stage", "region", "url"), "url": ("url",)}


def with_target(scenario: Scenario, *, kind: str | None = None, **fields: str | None) -> Scenario:
    """The scenario with its target chosen or adjusted on the command line.

    `--target KIND` picks the kind (keeping the file's target fields when the kind is the
    same); `--stage`, `--region`, `--stack`, `--url` then set fields of that target. A flag
    that means nothing for the kind is an error, not silently ignored.
    """
    given = {name: value for name, value in fields.items() if value is not None}
    if kind is None and not given:
        return scenario
    kind = kind or scenario.target.kind
    for name in given:
        if name not in TARGET_FLAGS[kind]:
            applies = ", ".join(f"--{flag}" for flag in TARGET_FLAGS[kind]) or "no flags"
            raise BadInput(f"--{name} does not apply to a {kind} target (it takes {applies})")
    keep = scenario.target.model_dump(exclude_none=True) if scenario.target.kind == kind else {}
    try:
        target: LocalTarget | AwsTarget | UrlTarget = TypeAdapter(Target).validate_python(
            {**keep, **given, "kind": kind}
        )
    except ValidationError as exc:
        raise BadInput(explain_target(exc, kind=kind, flags=TARGET_FLAGS[kind])) from None
    return scenario.model_copy(update={"target": target})


# --- quick tries: command-line overrides --------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|sec|m|min|h)?\s*$")
_DURATION_UNITS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}


def parse_duration(text: str, *, option: str = "--duration") -> float:
    """Seconds from `20`, `20s`, `2m`, `1.5h`."""
    found = _DURATION.match(text)
    if not found:
        raise BadInput(
            f"{option} {shown_option(text)}: expected seconds (20 or 20s), minutes (2m) or "
            "hours (1h)"
        )
    return float(found[1]) * _DURATION_UNITS[found[2]]


def parse_memory_list(text: str, *, option: str = "--memory") -> list[int]:
    """MB sizes from `256,512` (spaces allowed)."""
    sizes = []
    for part in text.split(","):
        part = part.strip()
        if not re.fullmatch(r"\d{1,9}", part):
            shown = f"`{part}`" if part else "an empty item"
            raise BadInput(
                f"{option} {shown_option(text)}: {shown_option(shown)} is not a whole number "
                "of MB (give e.g. 256,512,1024)"
            )
        sizes.append(int(part))
    return sizes


def with_overrides(
    scenario: Scenario,
    *,
    memory: str | None = None,
    until: str | None = None,
    duration: str | None = None,
    users: int | None = None,
    rate: float | None = None,
    repeats: int | None = None,
) -> tuple[Scenario, list[str]]:
    """The scenario with `run`'s quick-try options applied, and notes on what they replaced.

    The changed document goes through the same models as a file, so an option's value meets
    the same bounds; an error names the option (`--memory 100: must be at least 128 MB`).
    --users makes the load one closed stage of that many users; --rate makes it an open load
    at that rate; either replaces the other model's load, and a note says so. --duration sets
    the load's length (a closed profile's stages and ramps scale to it).
    """
    if users is not None and rate is not None:  # the CLI's argparse refuses it first
        raise BadInput(
            "--users and --rate are both given: --users runs a closed load, --rate an open one"
        )
    values = {
        "--memory": memory,
        "--until": until,
        "--repeats": repeats,
        "--users": users,
        "--rate": rate,
        "--duration": duration,
    }
    context = _Context(scenario=scenario, duration=duration)
    data = scenario.model_dump(mode="json")
    given: dict[str, str] = {}  # option -> the value as typed, for messages
    notes: list[str] = []
    for option, shown, change in _QUICK_TRIES:
        value = values[option]
        if value is not None:
            data, said = change(data, value, context)
            given[option] = shown(value)
            notes += said
    if not given:
        return scenario, notes
    try:
        return Scenario.model_validate(data), notes
    except ValidationError as exc:
        raise BadInput(explain_override(exc, given)) from None


_Document = dict[str, Any]  # a scenario as `model_dump(mode="json")` gives it
_Change = tuple[_Document, list[str]]  # the changed document, and notes on what it replaced


@dataclass(frozen=True)
class _Context:
    """What an option's change reads besides its own value."""

    scenario: Scenario  # as the file (and the target flags) gave it
    duration: str | None  # --duration as typed

    def length(self) -> float:
        """The load's length in the run: --duration's when given, else the scenario's.

        Parsed here, when a change needs it, not up front: a bad --memory is reported before
        a bad --duration.
        """
        if self.duration is None:
            return self.scenario.load.duration_s
        return parse_duration(self.duration)


def _memory(data: _Document, memory: str, context: _Context) -> _Change:
    """--memory: the sweep's sizes, or, with an explicit point list, the points at them."""
    sizes = parse_memory_list(memory)
    sweep = data["sweep"]
    points = sweep.get("points")
    if points is None:
        return {**data, "sweep": {**sweep, "memory_mb": sizes}}, []
    kept = [point for point in points if point["memory_mb"] in sizes]
    if not kept:
        listed = ", ".join(str(m) for m in context.scenario.sweep.memory_mb)
        raise BadInput(
            f"--memory {memory}: no point of sweep.points has that size (they have {listed} MB)"
        )
    return {**data, "sweep": {**sweep, "points": kept, "memory_mb": None}}, []


def _repeats(data: _Document, repeats: int, context: _Context) -> _Change:
    """--repeats: how many times each size is measured."""
    return {**data, "sweep": {**data["sweep"], "repeats": repeats}}, []


def _users(data: _Document, users: int, context: _Context) -> _Change:
    """--users: one closed stage of that many users, in place of the stages or an open load."""
    was, length = context.scenario.load, context.length()
    notes: list[str] = []
    if isinstance(was, OpenLoad):
        notes.append(
            f"--users {users} replaces the scenario's open load ({was.rate_per_s:g} req/s) with "
            f"a closed load: {users} users without think time for {length:g} s"
        )
        think: dict[str, Any] = {}
    else:
        think = data["load"]["think_time"]
        if len(was.stages) > 1 or was.stages[0].ramp_s:
            notes.append(
                f"--users {users} replaces the scenario's {len(was.stages)} stage(s) with one: "
                f"{users} users for {length:g} s, no ramp"
            )
    stages = [{"users": users, "duration_s": length}]
    return {**data, "load": {"model": "closed", "stages": stages, "think_time": think}}, notes


def _rate(data: _Document, rate: float, context: _Context) -> _Change:
    """--rate: an open load at that rate, in place of the rate or a closed load."""
    was = context.scenario.load
    if not isinstance(was, ClosedLoad):
        return {**data, "load": {**data["load"], "rate_per_s": rate}}, []
    length = context.length()
    note = (
        f"--rate {rate:g} replaces the scenario's closed load (up to {was.peak_users} users) "
        f"with an open load: {rate:g} req/s for {length:g} s, at most 100 in flight"
    )
    return {**data, "load": {"model": "open", "rate_per_s": rate, "duration_s": length}}, [note]


def _until(data: _Document, until: str, context: _Context) -> _Change:
    """--until: fixed (the profile as written) or confident (rounds until the answer is known)."""
    return {**data, "sweep": {**data["sweep"], "until": until}}, []


def _duration(data: _Document, duration: str, context: _Context) -> _Change:
    """--duration: the load's length; a closed profile's stages and ramps scale to it. A
    confident run measures in rounds at the peak load: there it bounds each setting (max_s)."""
    seconds = parse_duration(duration)
    sweep = data["sweep"]
    if sweep.get("until") == "confident":
        bounded = {**sweep, "max_s": seconds, "min_s": min(sweep.get("min_s", seconds), seconds)}
        note = (
            f"--duration {duration}: until confident, each setting is measured {seconds:g} s "
            "at most"
        )
        return {**data, "sweep": bounded}, [note]
    load = data["load"]
    if load["model"] == "open":
        return {**data, "load": {**load, "duration_s": seconds}}, []
    total = sum(stage["duration_s"] for stage in load["stages"])
    scale = seconds / total if total and math.isfinite(seconds) else 0.0
    stages = [
        {
            **stage,
            "duration_s": stage["duration_s"] * scale or seconds,
            "ramp_s": stage.get("ramp_s", 0) * scale,
        }
        for stage in load["stages"]
    ]
    return {**data, "load": {**load, "stages": stages}}, []


_Apply = Callable[[_Document, Any, _Context], _Change]  # an option's value -> its change

# The quick tries in the order they apply, which is also the order an error lists them in:
# the option, its value as a message shows it, and its change to the document. --users and
# --rate replace the load before --duration scales it.
_QUICK_TRIES: tuple[tuple[str, Callable[[Any], str], _Apply], ...] = (
    ("--memory", str, _memory),
    ("--until", str, _until),
    ("--repeats", str, _repeats),
    ("--users", str, _users),
    ("--rate", "{:g}".format, _rate),
    ("--duration", str, _duration),
)
