"""What a million requests cost at a memory size: pure functions and a dated price table.

Prices are AWS's public on-demand list prices for us-east-1 (the table's date says when they
were read). Lambda compute is billed per GB-second of billed duration at 1 ms granularity
(cold starts bill their INIT phase too since 1 August 2025), at the x86_64 or arm64 price;
requests per million; API Gateway per million requests of its API type (REST or HTTP, first
tier; an HTTP API meters a request in 512 KB increments); DynamoDB on-demand per million read
and write request units. Where a step measured billed durations and consumed capacity, the
cost uses them; otherwise the figure is marked as an estimate and says what it assumed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from runner.lambda_facts import DEFAULT_API, DEFAULT_ARCHITECTURE, ApiType, Architecture


@dataclass(frozen=True)
class PriceTable:
    as_of: str  # when the prices were read
    region: str
    lambda_gb_second: dict[str, float]  # by architecture
    lambda_per_million_requests: float
    api_gateway_rest_per_million: float
    dynamodb_per_million_wru: float
    dynamodb_per_million_rru: float
    api_gateway_http_per_million: float
    http_api_metering_bytes: int  # an HTTP API request is metered in increments of this size
    # CloudWatch Logs ingestion (standard log class), per GB of log data (GB = 2**30 bytes)
    cloudwatch_logs_per_gb: float

    def api_gateway_per_million(self, api: ApiType) -> float:
        """The price of 1M requests (each within one metering increment) of an API type."""
        if api == "rest":
            return self.api_gateway_rest_per_million
        if api == "http":
            return self.api_gateway_http_per_million
        raise ValueError(f"API type {api!r}: must be rest or http")


# AWS pricing pages for Lambda, API Gateway and DynamoDB (on-demand), us-east-1, read on as_of.
PRICES_US_EAST_1 = PriceTable(
    as_of="2026-12-01",
    region="us-east-1",
    # https://aws.amazon.com/lambda/pricing/: x86 $0.0000166667 per GB-s for the first 6 billion
    # GB-s a month, Arm $0.0000133334 for the first 7.5 billion (the first tier: a sweep's
    # functions are far below either); $0.20 per 1M requests, both architectures.
    lambda_gb_second={"x86_64": 0.0000166667, "arm64": 0.0000133334},
    lambda_per_million_requests=0.20,
    # https://aws.amazon.com/api-gateway/pricing/ (and AWS's whitepaper "Best Practices for
    # Designing Amazon API Gateway Private APIs and Private Integration", Cost optimization,
    # which tabulates it): REST APIs $3.50 per 1M for the first 333 million requests a month
    # ($2.80 for the next 667 million); HTTP APIs $1.00 per 1M for the first 300 million ($0.90
    # above), and "HTTP APIs are metered in 512 KB increments": a request over 512 KB counts
    # as more than one (KB = 1,024 bytes; AWS does not say which bytes: memsweep counts the
    # request's and its response's together, the larger reading). Cost per 1M is priced at the
    # first tier: the tier a bill reaches depends on the month's whole volume, not on a sweep.
    api_gateway_rest_per_million=3.50,
    api_gateway_http_per_million=1.00,
    http_api_metering_bytes=512 * 1024,
    # https://aws.amazon.com/dynamodb/pricing/on-demand/: $0.625 per 1M write request units,
    # $0.125 per 1M read request units.
    dynamodb_per_million_wru=0.625,
    dynamodb_per_million_rru=0.125,
    # https://aws.amazon.com/cloudwatch/pricing/ (Logs, "Collect (Data Ingestion)", Standard log
    # class): $0.50 per GB. Since 1 May 2025 Lambda's own logs are "vended logs" with volume
    # tiers whose first tier (the first 10 TB a month) keeps that $0.50 (AWS's announcement
    # "AWS Lambda introduces tiered pricing for Amazon CloudWatch logs"). Not confirmed from
    # AWS's page itself here: read from secondary sources quoting it (The Duckbill Group,
    # "Lambda CloudWatch Logs tiered pricing", May 2025; hykell.com's CloudWatch Logs guide).
    cloudwatch_logs_per_gb=0.50,
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
    architecture: Architecture = DEFAULT_ARCHITECTURE,
    prices: PriceTable = PRICES_US_EAST_1,
) -> float:
    """Dollars for one invocation's billed duration at a memory size (GB = 1,024 MB)."""
    gb_seconds = (billed_ms / 1000) * (memory_mb / 1024)
    return gb_seconds * prices.lambda_gb_second[architecture]


def http_api_requests_metered(
    request_bytes: float | None, *, prices: PriceTable = PRICES_US_EAST_1
) -> int:
    """How many requests an HTTP API bills for one request of this size (request plus
    response, bytes): one per started 512 KB increment, at least one. None (size unknown):
    one."""
    if request_bytes is None:
        return 1
    if request_bytes < 0 or not math.isfinite(request_bytes):
        raise ValueError(f"request size {request_bytes!r} bytes: must be a finite size >= 0")
    return max(1, math.ceil(request_bytes / prices.http_api_metering_bytes))


def cost_per_million(
    *,
    memory_mb: int,
    billed_ms_mean: float | None,
    read_units_per_request: float | None,
    write_units_per_request: float | None,
    duration_ms_fallback: float | None = None,
    architecture: Architecture = DEFAULT_ARCHITECTURE,
    api: ApiType = DEFAULT_API,
    request_bytes_mean: float | None = None,
    prices: PriceTable = PRICES_US_EAST_1,
) -> CostPerMillion:
    """Cost of one million requests from a step's measurements.

    billed_ms_mean: mean billed duration per invocation from REPORT lines (cold starts
    included). Without it, `duration_ms_fallback` (e.g. the client-side mean latency, an
    over-estimate) is used and the figure is an estimate. Capacity units per request come
    from handler.py's log line; without them DynamoDB is counted as zero and estimated.
    api: the API type the requests went through (REST by default, the tutorial's).
    request_bytes_mean: an HTTP API's mean request plus response size in bytes, for its
    512 KB metering (http_api_requests_metered); without it each request counts once.
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
    api_gateway = prices.api_gateway_per_million(api)
    if api == "http":
        metered = http_api_requests_metered(request_bytes_mean, prices=prices)
        api_gateway *= metered
        increment = f"{prices.http_api_metering_bytes // 1024} KB"
        if request_bytes_mean is None:
            notes.append(f"HTTP API: each request metered as one (under {increment} assumed)")
        else:
            notes.append(
                f"HTTP API: requests of {request_bytes_mean / 1024:,.1f} KB on average "
                f"(request + response) metered as {metered:g} each ({increment} increments, "
                "every request assumed of the mean size)"
            )
    return CostPerMillion(
        lambda_compute=compute * MILLION,
        lambda_requests=prices.lambda_per_million_requests,
        api_gateway=api_gateway,
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
    architecture: Architecture = DEFAULT_ARCHITECTURE,
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
