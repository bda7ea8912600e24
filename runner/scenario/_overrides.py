"""The command line's changes to a scenario: the target flags (`with_target`) and the quick
tries (`with_overrides`: --memory, --duration, --users, …), checked as the file is."""

from __future__ import annotations

import math
import re
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
    data = scenario.model_dump(mode="json")
    given: dict[str, str] = {}  # option -> the value as typed, for messages
    notes: list[str] = []
    if memory is not None:
        sizes = parse_memory_list(memory)
        points = data["sweep"].get("points")
        if points is not None:
            # An explicit point list: --memory keeps the points at these sizes.
            kept = [point for point in points if point["memory_mb"] in sizes]
            if not kept:
                raise BadInput(
                    f"--memory {memory}: no point of sweep.points has that size (they have "
                    f"{', '.join(str(m) for m in scenario.sweep.memory_mb)} MB)"
                )
            data["sweep"]["points"], data["sweep"]["memory_mb"] = kept, None
        else:
            data["sweep"]["memory_mb"] = sizes
        given["--memory"] = memory
    if repeats is not None:
        data["sweep"]["repeats"] = repeats
        given["--repeats"] = str(repeats)
    load = data["load"]
    # The notes name the length the run will have: --duration's when given.
    seconds = parse_duration(duration) if duration is not None else None
    length = seconds if seconds is not None else scenario.load.duration_s
    if users is not None:
        given["--users"] = str(users)
        if isinstance(scenario.load, OpenLoad):
            notes.append(
                f"--users {users} replaces the scenario's open load ({scenario.load.rate_per_s:g} "
                f"req/s) with a closed load: {users} users without think time for "
                f"{length:g} s"
            )
            think: dict[str, Any] = {}
        else:
            think = load["think_time"]
            if len(scenario.load.stages) > 1 or scenario.load.stages[0].ramp_s:
                notes.append(
                    f"--users {users} replaces the scenario's {len(scenario.load.stages)} "
                    f"stage(s) with one: {users} users for {length:g} s, no ramp"
                )
        load = {
            "model": "closed",
            "stages": [{"users": users, "duration_s": length}],
            "think_time": think,
        }
    if rate is not None:
        given["--rate"] = f"{rate:g}"
        if isinstance(scenario.load, ClosedLoad):
            notes.append(
                f"--rate {rate:g} replaces the scenario's closed load (up to "
                f"{scenario.load.peak_users} users) with an open load: {rate:g} req/s for "
                f"{length:g} s, at most 100 in flight"
            )
            load = {"model": "open", "rate_per_s": rate, "duration_s": length}
        else:
            load = {**load, "rate_per_s": rate}
    if duration is not None and seconds is not None:
        given["--duration"] = duration
        if load["model"] == "open":
            load = {**load, "duration_s": seconds}
        else:
            total = sum(stage["duration_s"] for stage in load["stages"])
            scale = seconds / total if total and math.isfinite(seconds) else 0.0
            load = {
                **load,
                "stages": [
                    {
                        **stage,
                        "duration_s": stage["duration_s"] * scale or seconds,
                        "ramp_s": stage.get("ramp_s", 0) * scale,
                    }
                    for stage in load["stages"]
                ],
            }
    data["load"] = load
    if not given:
        return scenario, notes
    try:
        return Scenario.model_validate(data), notes
    except ValidationError as exc:
        raise BadInput(explain_override(exc, given)) from None
