"""What a million requests cost at a memory size: pure functions and a dated price table.

Prices are AWS's public on-demand list prices for us-east-1 (the table's date says when they
were read). Lambda compute is billed per GB-second of billed duration at 1 ms granularity
(cold starts bill their INIT phase too since 1 August 2025); requests per million; API
Gateway REST per million requests (first tier); DynamoDB on-demand per million read and
write request units. Where a step measured billed durations and consumed capacity, the cost
uses them; otherwise the figure is marked as an estimate and says what it assumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Architecture = Literal["x86_64", "arm64"]


@dataclass(frozen=True)
class PriceTable:
    as_of: str  # when the prices were read
    region: str
    lambda_gb_second: dict[str, float]  # by architecture
    lambda_per_million_requests: float
    api_gateway_rest_per_million: float
    dynamodb_per_million_wru: float
    dynamodb_per_million_rru: float


# AWS pricing pages for Lambda, API Gateway and DynamoDB (on-demand), us-east-1.
PRICES_US_EAST_1 = PriceTable(
    as_of="2026-11-27",
    region="us-east-1",
    lambda_gb_second={"x86_64": 0.0000166667, "arm64": 0.0000133334},
    lambda_per_million_requests=0.20,
    api_gateway_rest_per_million=3.50,
    dynamodb_per_million_wru=0.625,
    dynamodb_per_million_rru=0.125,
)

MILLION = 1_000_000


def money(dollars: float) -> str:
    """US dollars as people read them: the verdict's sentences, the report, summary.md.

    Cents from $1 up; below, a tenth of a cent, so a cold-start cost or a difference between
    sizes does not read $0.00 (one rule, so the headline and the tables cannot disagree).
    """
    return f"${dollars:,.2f}" if dollars >= 1 else f"${dollars:.3f}"


@dataclass(frozen=True)
class CostPerMillion:
    """US dollars per one million API requests, split by what bills them."""

    lambda_compute: float
    lambda_requests: float
    api_gateway: float
    dynamodb: float
    estimated: bool
    basis: str  # what the figure rests on, in words

    @property
    def total(self) -> float:
        return self.lambda_compute + self.lambda_requests + self.api_gateway + self.dynamodb


def lambda_compute_cost(
    billed_ms: float,
    memory_mb: int,
    *,
    architecture: Architecture = "x86_64",
    prices: PriceTable = PRICES_US_EAST_1,
) -> float:
    """Dollars for one invocation's billed duration at a memory size (GB = 1,024 MB)."""
    gb_seconds = (billed_ms / 1000) * (memory_mb / 1024)
    return gb_seconds * prices.lambda_gb_second[architecture]


def cost_per_million(
    *,
    memory_mb: int,
    billed_ms_mean: float | None,
    read_units_per_request: float | None,
    write_units_per_request: float | None,
    duration_ms_fallback: float | None = None,
    architecture: Architecture = "x86_64",
    prices: PriceTable = PRICES_US_EAST_1,
) -> CostPerMillion:
    """Cost of one million requests from a step's measurements.

    billed_ms_mean: mean billed duration per invocation from REPORT lines (cold starts
    included). Without it, `duration_ms_fallback` (e.g. the client-side mean latency, an
    over-estimate) is used and the figure is an estimate. Capacity units per request come
    from handler.py's log line; without them DynamoDB is counted as zero and estimated.
    """
    notes = []
    estimated = False
    billed = billed_ms_mean
    if billed is None:
        estimated = True
        billed = float(duration_ms_fallback or 0.0)
        notes.append("Lambda time estimated from client latency (no REPORT lines)")
    else:
        notes.append("Lambda time from REPORT billed durations")
    compute = lambda_compute_cost(billed, memory_mb, architecture=architecture, prices=prices)
    if read_units_per_request is None or write_units_per_request is None:
        estimated = True
        dynamodb = 0.0
        notes.append("DynamoDB not measured (counted as $0)")
    else:
        dynamodb = (
            read_units_per_request * prices.dynamodb_per_million_rru
            + write_units_per_request * prices.dynamodb_per_million_wru
        )
        notes.append("DynamoDB from consumed capacity")
    return CostPerMillion(
        lambda_compute=compute * MILLION,
        lambda_requests=prices.lambda_per_million_requests,
        api_gateway=prices.api_gateway_rest_per_million,
        dynamodb=dynamodb,
        estimated=estimated,
        basis="; ".join(notes) + f"; {prices.region} prices as of {prices.as_of}",
    )


# Fewer cold starts than this in a size's windows: their cost per 1M requests is shown but
# not compared between sizes (one or two cold starts more or less would reorder them).
MIN_COLD_STARTS_TO_COMPARE = 5


@dataclass(frozen=True)
class ColdStartCost:
    """What cold starts add to a size's bill at the measured load, apart from steady state."""

    cold_starts: int
    requests: int
    extra_billed_ms: float | None  # billed time of a cold call beyond a warm one (init incl.)
    per_cold_start: float | None  # dollars
    per_million_requests_count: float  # cold starts per 1M requests at this load

    @property
    def per_million(self) -> float:
        """Dollars per 1M requests that the cold starts add."""
        return (self.per_cold_start or 0.0) * self.per_million_requests_count

    @property
    def comparable(self) -> bool:
        return self.cold_starts >= MIN_COLD_STARTS_TO_COMPARE


def cold_start_cost(
    *,
    memory_mb: int,
    cold_starts: int,
    requests: int,
    cold_billed_ms_total: int,
    warm_billed_ms_mean: float | None,
    architecture: Architecture = "x86_64",
    prices: PriceTable = PRICES_US_EAST_1,
) -> ColdStartCost:
    """Cold starts priced apart: each one's billed time beyond a warm call, times how many
    1M requests would meet at this load (a rate that depends on the load, not on memory)."""
    extra: float | None = None
    per_cold: float | None = None
    if cold_starts:
        extra = max(0.0, cold_billed_ms_total / cold_starts - (warm_billed_ms_mean or 0.0))
        per_cold = lambda_compute_cost(extra, memory_mb, architecture=architecture, prices=prices)
    return ColdStartCost(
        cold_starts=cold_starts,
        requests=requests,
        extra_billed_ms=extra,
        per_cold_start=per_cold,
        per_million_requests_count=cold_starts / requests * MILLION if requests else 0.0,
    )
