"""What a run on the aws target costs by itself: estimated from its plan before it starts, and
measured from its results after.

A sweep sends real requests through API Gateway, runs Lambda at every size it measures, reads
and writes DynamoDB and ingests the function's log lines into CloudWatch Logs: AWS Lambda
Power Tuning reports its own execution's cost, and so does memsweep. Prices come from the
dated table (runner/analysis/_cost.py); the figures are dollars for the whole run, not per
1M requests.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from runner.analysis._cost import MILLION, PRICES_US_EAST_1, PriceTable, money
from runner.lambda_facts import (
    API_NAMES,
    DEFAULT_API,
    DEFAULT_ARCHITECTURE,
    ApiType,
    Architecture,
)
from runner.results import AwsCharges, ChargeLine, Results, Step
from runner.scenario import (
    ClosedLoad,
    OpenLoad,
    Point,
    Scenario,
    describe_plan,
    point_label,
    step_load,
    user_seconds,
)

# Billed time per invocation when no earlier run says better: handler.py warm takes a few ms
# of CPU and one DynamoDB round trip (docs/ARCHITECTURE.md, section 4.2: 3-6 ms at 128-1024 MB
# on the local stack), and a cold start bills its init (~225 ms of boto3 import, section 4.3)
# once per sandbox; 60 ms per call is above both spread over a step, so the estimate errs high.
DEFAULT_BILLED_MS = 60.0
# What a call takes beyond the function, for a closed model's pace: the 60 ms of network and
# gateway the tutorial's published latencies hold (docs/ARCHITECTURE.md, section 4.1).
NETWORK_AND_GATEWAY_S = 0.060
# CloudWatch Logs bytes per invocation of handler.py, text log format, measured on the local
# stack's log of a six-size sweep (3,494 invocations, the same lines Lambda writes): START 71 B,
# handler.py's JSON line 282 B, END 52 B, REPORT 140-143 B (a cold one ~25 B more), each with
# its newline; plus 26 B per event, what PutLogEvents counts per event (CloudWatch Logs API
# reference, PutLogEvents): AWS does not say whether ingestion is billed on it, so it is
# counted, the larger reading. A cold start's INIT_START line (~150 B) is left out.
LOG_LINES_PER_INVOCATION = 4
LOG_BYTES_PER_INVOCATION = 71 + 282 + 52 + 140 + 26 * LOG_LINES_PER_INVOCATION  # 649
GB = 1024**3

# DynamoDB request units per call of each handler.py operation (DynamoDB developer guide,
# "Read/write capacity mode": a write of an item up to 1 KB is 1 WRU, an eventually consistent
# read of up to 4 KB is 0.5 RRU; handler.py reads without ConsistentRead). Items are assumed
# small: a `list` scans at most 100 items (handler.py LIST_LIMIT_MAX) of under 40 B each, one
# 4 KB unit; ping and echo touch no table.
UNITS_BY_OPERATION: dict[str, tuple[float, float]] = {  # (read, write)
    "read": (0.5, 0.0),
    "list": (0.5, 0.0),
    "create": (0.0, 1.0),
    "update": (0.0, 1.0),
    "delete": (0.0, 1.0),
    "ping": (0.0, 0.0),
    "echo": (0.0, 0.0),
}
# A reset pages the table with `list` (at most this many items a page: handler.py's cap) and
# deletes each item (runner/load/_seeding.py).
LIST_PAGE_ITEMS = 100


@dataclass
class _Tally:
    """Quantities a run bills, summed as they are counted."""

    requests: dict[ApiType, float] = field(default_factory=lambda: defaultdict(float))
    invocations: float = 0.0
    gb_seconds: dict[Architecture, float] = field(default_factory=lambda: defaultdict(float))
    read_units: float = 0.0
    write_units: float = 0.0
    log_bytes: float = 0.0
    # Some of the run's function-side figures rest on an assumption (no log lines to read).
    assumed: bool = False


def mix_units(scenario: Scenario) -> tuple[float, float, list[str]]:
    """(read, write) request units per request of the scenario's mix, by its weights, and the
    request names whose operation is not handler.py's (counted as touching no table)."""
    total = sum(spec.weight for spec in scenario.requests)
    reads = writes = 0.0
    unknown: list[str] = []
    for spec in scenario.requests:
        operation = spec.body.get("operation") if isinstance(spec.body, dict) else None
        if operation not in UNITS_BY_OPERATION:
            unknown.append(spec.name)
            continue
        read, write = UNITS_BY_OPERATION[operation]
        reads += spec.weight / total * read
        writes += spec.weight / total * write
    return reads, writes, unknown


def create_share(scenario: Scenario) -> float:
    """The share of the mix that adds an item to the table (what a reset has to delete)."""
    total = sum(spec.weight for spec in scenario.requests)
    return (
        sum(
            spec.weight
            for spec in scenario.requests
            if isinstance(spec.body, dict) and spec.body.get("operation") == "create"
        )
        / total
    )


def previous_billed_ms(previous: Results) -> dict[str, float]:
    """Each point's mean billed duration in an earlier run (every invocation it logged,
    warm-up and cold starts included), by point label."""
    billed: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for step in previous.steps:
        for part in (step.invocations, step.outside.warmup):
            billed[step.label][0] += part.billed_ms_total
            billed[step.label][1] += part.count
    return {label: total / count for label, (total, count) in billed.items() if count}


def estimate_test_cost(
    scenario: Scenario,
    *,
    previous: Results | None = None,
    previous_name: str = "",
    prices: PriceTable = PRICES_US_EAST_1,
) -> AwsCharges:
    """The run's own AWS charges, from its plan: requests per step (warm-up, seeding and a
    reset included) × each point's billed time, API type and architecture; a confident sweep
    at its worst case, every setting measured to max_s."""
    plan = describe_plan(scenario)
    load = step_load(scenario)
    known = previous_billed_ms(previous) if previous is not None else {}
    read_units, write_units, unknown = mix_units(scenario)
    tally = _Tally()
    defaulted: set[str] = set()
    for point, _ in plan.steps:
        label = point_label(point)
        billed_ms = known.get(label)
        if billed_ms is None:
            defaulted.add(label)
            billed_ms = DEFAULT_BILLED_MS
        load_requests = _load_requests(load, response_s=billed_ms / 1000 + NETWORK_AND_GATEWAY_S)
        seeding = _seeding(scenario, load_requests)
        requests = load_requests + seeding.requests
        _count_calls(tally, point, requests=requests, billed_ms=billed_ms)
        tally.read_units += load_requests * read_units + seeding.reads
        tally.write_units += load_requests * write_units + seeding.writes
    basis = _estimate_basis(
        scenario,
        known=known,
        defaulted=defaulted,
        previous_name=previous_name,
        unknown=unknown,
    )
    tally.assumed = True
    return _charges(tally, basis=basis, before=True, prices=prices)


@dataclass(frozen=True)
class _Seeding:
    """What seeding sends before one step, and the units it uses."""

    requests: float
    reads: float
    writes: float


def _seeding(scenario: Scenario, load_requests: float) -> _Seeding:
    """Seeding before a step: one create per item and, with reset, a `list` per page (the
    last one empty) and a delete per item the table holds (the last step's seed and creates)."""
    seed = scenario.seed
    held = seed.items + load_requests * create_share(scenario) if seed.reset else 0.0
    pages = math.ceil(held / LIST_PAGE_ITEMS) + 1 if seed.reset else 0
    return _Seeding(
        requests=seed.items + held + pages,
        reads=pages * UNITS_BY_OPERATION["list"][0],
        writes=(seed.items + held) * UNITS_BY_OPERATION["delete"][1],
    )


def _load_requests(load: ClosedLoad | OpenLoad, *, response_s: float) -> float:
    """Requests one step's load sends, its warm-up included: a closed model's users each send
    one per think time plus response time; an open model its rate."""
    if isinstance(load, ClosedLoad):
        think = (load.think_time.min_s + load.think_time.max_s) / 2
        return user_seconds(load) / (think + response_s)
    return float(load.rate_per_s * load.duration_s)


def _count_calls(tally: _Tally, point: Point, *, requests: float, billed_ms: float) -> None:
    """One step's calls: API Gateway requests of its API type, as many invocations, their
    billed GB-seconds at its architecture, and their log lines."""
    tally.requests[point.api or DEFAULT_API] += requests
    tally.invocations += requests
    architecture = point.architecture or DEFAULT_ARCHITECTURE
    tally.gb_seconds[architecture] += requests * billed_ms / 1000 * point.memory_mb / 1024
    tally.log_bytes += requests * LOG_BYTES_PER_INVOCATION


def _estimate_basis(
    scenario: Scenario,
    *,
    known: dict[str, float],
    defaulted: set[str],
    previous_name: str,
    unknown: list[str],
) -> str:
    """The estimate's assumptions in words."""
    parts = []
    if known and not defaulted:
        parts.append(f"billed time per call from {previous_name or 'an earlier run'}")
    elif known:
        parts.append(
            f"billed time per call from {previous_name or 'an earlier run'}, "
            f"{DEFAULT_BILLED_MS:g} ms for {', '.join(sorted(defaulted))} (not in it)"
        )
    elif previous_name:
        parts.append(f"{DEFAULT_BILLED_MS:g} ms billed per call ({previous_name} logged none)")
    else:
        parts.append(f"{DEFAULT_BILLED_MS:g} ms billed per call")
    if isinstance(scenario.load, ClosedLoad):
        parts.append(
            f"each user's pace: think time + billed time + {NETWORK_AND_GATEWAY_S * 1000:g} ms "
            "of network and gateway"
        )
    # The plan's "expected requests" counts measured windows only: say why this is more.
    parts.append("requests over whole steps (warm-ups included) and seeding")
    parts.append("DynamoDB: 0.5 RRU per read or list, 1 WRU per write of an item under 1 KB")
    if unknown:
        parts.append(f"no DynamoDB units for {', '.join(unknown)} (not a handler.py operation)")
    parts.append(f"CloudWatch Logs {LOG_BYTES_PER_INVOCATION} B per invocation")
    if scenario.sweep.until == "confident":
        parts.append("a confident sweep at max_s (every setting measured to the end)")
    return "; ".join(parts)


def measured_test_cost(
    results: Results, *, prices: PriceTable = PRICES_US_EAST_1
) -> AwsCharges | None:
    """What the run did cost, from its steps: every request (the window's as the clients
    counted them, and the invocations outside it: warm-up, seeding, in flight at the end),
    every billed ms and DynamoDB unit its function logged; log bytes estimated per invocation.
    None: no step ran."""
    if not results.steps:
        return None
    tally = _Tally()
    notes: list[str] = []
    read_units, write_units, _ = mix_units(results.scenario)
    for step in results.steps:
        _count_step(
            tally,
            step,
            architecture=step.architecture or _architecture(results),
            mix=(read_units, write_units),
            notes=notes,
        )
    basis = "; ".join(
        [
            "requests: the window's as the clients counted them, and every invocation outside it",
            "Lambda and DynamoDB from the function's log (REPORT lines, handler.py's records)",
            *dict.fromkeys(notes),
            f"CloudWatch Logs estimated at {LOG_BYTES_PER_INVOCATION} B per invocation",
        ]
    )
    return _charges(tally, basis=basis, before=False, prices=prices)


def _architecture(results: Results) -> Architecture:
    known = results.target.architecture
    return "arm64" if known == "arm64" else DEFAULT_ARCHITECTURE


def _count_step(
    tally: _Tally,
    step: Step,
    *,
    architecture: Architecture,
    mix: tuple[float, float],
    notes: list[str],
) -> None:
    """One step's billed quantities, from its window and what fell outside it."""
    window, outside = step.invocations, step.outside
    if window.count == 0 and step.requests > 0:
        # No log lines for a window the clients sent requests in (logs unreadable): the
        # invocations are the requests, at the default billed time and the mix's units.
        measured_s = max(step.window_end - step.window_start, 1e-9)
        calls = step.requests * (step.window_end - step.started_at) / measured_s
        notes.append(
            f"{step.label}: no invocations in the function's log; {calls:,.0f} calls estimated "
            f"from the requests at {DEFAULT_BILLED_MS:g} ms each"
        )
        tally.assumed = True
        tally.requests[step.api or DEFAULT_API] += calls
        tally.invocations += calls
        tally.gb_seconds[architecture] += calls * DEFAULT_BILLED_MS / 1000 * step.memory_mb / 1024
        tally.read_units += calls * mix[0]
        tally.write_units += calls * mix[1]
        tally.log_bytes += calls * LOG_BYTES_PER_INVOCATION
        return
    logged = [window, outside.before, outside.warmup]
    billed_ms = float(sum(part.billed_ms_total for part in logged))
    countless = outside.after_window + outside.unattributed  # counted, no billed figures kept
    if countless and window.billed_ms_mean is not None:
        billed_ms += countless * window.billed_ms_mean
    calls = sum(part.count for part in logged) + countless
    tally.requests[step.api or DEFAULT_API] += step.requests + calls - window.count
    tally.invocations += calls
    tally.gb_seconds[architecture] += billed_ms / 1000 * step.memory_mb / 1024
    tally.log_bytes += calls * LOG_BYTES_PER_INVOCATION
    for part in logged:
        records = part.count if part.capacity_records is None else part.capacity_records
        tally.read_units += part.read_units
        tally.write_units += part.write_units
        if part.count > records:  # a handler that logs no capacity: the mix's units
            tally.read_units += (part.count - records) * mix[0]
            tally.write_units += (part.count - records) * mix[1]
            notes.append("DynamoDB units from the mix for calls whose handler logged none")


def _charges(tally: _Tally, *, basis: str, before: bool, prices: PriceTable) -> AwsCharges:
    """The tally priced, one line per service and unit. Log bytes are never measured (the aws
    target reads only the REPORT and handler lines): that line is always an estimate."""
    assumed = tally.assumed

    def per_million(service: str, quantity: float, unit: str, price: float) -> ChargeLine:
        """A line priced per million of its unit (requests, read or write units)."""
        usd = quantity / MILLION * price
        return ChargeLine(service=service, quantity=quantity, unit=unit, usd=usd, estimated=assumed)

    lines = [
        per_million(
            f"API Gateway {API_NAMES[api].removesuffix(' API')}",
            count,
            "requests",
            prices.api_gateway_per_million(api),
        )
        for api, count in sorted(tally.requests.items())
        if count
    ]
    gb_seconds = sum(tally.gb_seconds.values())
    compute = sum(gbs * prices.lambda_gb_second[arch] for arch, gbs in tally.gb_seconds.items())
    log_gb = tally.log_bytes / GB
    lines += [
        per_million(
            "Lambda requests", tally.invocations, "requests", prices.lambda_per_million_requests
        ),
        ChargeLine(
            service="Lambda compute",
            quantity=gb_seconds,
            unit="GB-s",
            usd=compute,
            estimated=assumed,
        ),
        per_million("DynamoDB reads", tally.read_units, "RRU", prices.dynamodb_per_million_rru),
        per_million("DynamoDB writes", tally.write_units, "WRU", prices.dynamodb_per_million_wru),
        ChargeLine(
            service="CloudWatch Logs",
            quantity=log_gb,
            unit="GB",
            usd=log_gb * prices.cloudwatch_logs_per_gb,
            estimated=True,
        ),
    ]
    return AwsCharges(
        total_usd=sum(item.usd for item in lines),
        lines=lines,
        basis=basis,
        prices_as_of=f"{prices.region} prices as of {prices.as_of}",
        estimated=before,
    )


def charges_lines(charges: AwsCharges, *, before: bool) -> list[str]:
    """The block `--dry-run`, the start of an aws run and its end print: the total by service,
    then what it rests on."""
    by_service: dict[str, list[ChargeLine]] = defaultdict(list)
    for line in charges.lines:
        by_service[_family(line.service)].append(line)
    parts = []
    for family, lines in by_service.items():
        amounts = " and ".join(quantity_text(line.quantity, line.unit) for line in lines)
        parts.append(f"{family} {amounts} {_usd(sum(line.usd for line in lines))}")
    head = "AWS charges of this test: about" if before else "AWS charges of this test, measured:"
    return [
        f"{head} {money(charges.total_usd)} ({', '.join(parts)})",
        f"  {'assumes' if before else 'from'}: {charges.basis} ({charges.prices_as_of})",
    ]


def _usd(dollars: float) -> str:
    """money(), except that a charge under a twentieth of a cent is not shown as $0.000."""
    return "under $0.001" if 0 < dollars < 0.0005 else money(dollars)


# Lines billed under one service, shown together.
FAMILY = {
    "Lambda requests": "Lambda",
    "Lambda compute": "Lambda",
    "DynamoDB reads": "DynamoDB",
    "DynamoDB writes": "DynamoDB",
}


def _family(service: str) -> str:
    return FAMILY.get(service, service)


def quantity_text(value: float, unit: str) -> str:
    """96,000 requests; 0.9k GB-s; 1.3 MB (of log data)."""
    if unit == "GB":
        return f"{value * 1024:,.1f} MB" if value < 1 else f"{value:,.2f} GB"
    if unit == "GB-s" and value >= 1000:
        return f"{value / 1000:,.1f}k GB-s"
    if unit == "GB-s":
        return f"{value:,.1f} GB-s"
    if unit == "requests" and value != 1:
        return f"{value:,.0f} requests"
    return f"{value:,.0f} {unit}"
