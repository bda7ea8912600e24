"""Cost per million requests, checked against hand-worked AWS pricing arithmetic."""

from __future__ import annotations

import pytest

from runner.analysis import PRICES_US_EAST_1, money
from runner.analysis._cost import cost_per_million, http_api_requests_metered, lambda_compute_cost


def test_given_the_aws_pricing_page_example_then_the_same_compute_bill() -> None:
    # AWS's example: 512 MB, 3 million invocations of 1 s each in a month.
    # 3,000,000 x 1 s x 0.5 GB = 1,500,000 GB-s x $0.0000166667 = $25.00005 (before free tier).
    total = lambda_compute_cost(1000, 512) * 3_000_000
    assert total == pytest.approx(25.00005, rel=1e-9)


def test_given_128_mb_100_ms_and_half_a_read_unit_then_each_part_per_million() -> None:
    # Lambda: 0.100 s x 128/1024 GB = 0.0125 GB-s x $0.0000166667 = $2.0833375e-7 per call
    #         x 1,000,000 = $0.20833375
    # Requests $0.20, API Gateway REST $3.50, DynamoDB 0.5 RRU x $0.125 = $0.0625
    cost = cost_per_million(
        memory_mb=128, billed_ms_mean=100.0, read_units_per_request=0.5, write_units_per_request=0.0
    )
    assert cost.lambda_compute == pytest.approx(0.20833375)
    assert cost.lambda_requests == 0.20
    assert cost.api_gateway == 3.50
    assert cost.dynamodb == pytest.approx(0.0625)
    assert cost.total == pytest.approx(3.97083375)
    assert not cost.estimated


def test_given_arm64_1024_mb_10_ms_and_one_write_then_arm_prices() -> None:
    # 0.010 s x 1 GB = 0.01 GB-s x $0.0000133334 x 1,000,000 = $0.133334; 1 WRU = $0.625
    cost = cost_per_million(
        memory_mb=1024,
        billed_ms_mean=10.0,
        read_units_per_request=0.0,
        write_units_per_request=1.0,
        architecture="arm64",
    )
    assert cost.lambda_compute == pytest.approx(0.133334)
    assert cost.dynamodb == pytest.approx(0.625)


def test_given_double_the_memory_at_half_the_time_then_the_same_compute_cost() -> None:
    slow = cost_per_million(
        memory_mb=128, billed_ms_mean=200, read_units_per_request=0, write_units_per_request=0
    )
    fast = cost_per_million(
        memory_mb=256, billed_ms_mean=100, read_units_per_request=0, write_units_per_request=0
    )
    assert slow.lambda_compute == pytest.approx(fast.lambda_compute)


def test_given_no_measurements_then_the_figure_is_marked_an_estimate_and_says_why() -> None:
    cost = cost_per_million(
        memory_mb=512,
        billed_ms_mean=None,
        read_units_per_request=None,
        write_units_per_request=None,
        duration_ms_fallback=40.0,
    )
    assert cost.estimated
    assert "estimated from client latency" in cost.basis
    assert "DynamoDB not measured" in cost.basis
    assert PRICES_US_EAST_1.as_of in cost.basis


# -- the API type and the architecture beside memory: the whole bill per point -----------------


def test_given_the_issue_s_point_then_memory_is_under_3_percent_and_http_saves_2_50() -> None:
    # Lambda: 0.060 s x 128/1024 GB = 0.0075 GB-s x $0.0000166667 = $1.2500025e-7 per call
    #         x 1,000,000 = $0.12500025 ("about $0.13")
    # Lambda requests $0.20; REST $3.50; HTTP $1.00 (each request under 512 KB: one unit)
    # DynamoDB: 1 WRU x $0.625 + 1 RRU x $0.125 = $0.75 ("about $0.75")
    # REST total: 0.12500025 + 0.20 + 3.50 + 0.75 = $4.57500025; HTTP: $2.07500025
    rest = cost_per_million(
        memory_mb=128, billed_ms_mean=60.0, read_units_per_request=1, write_units_per_request=1
    )  # api defaults to rest: the verdict's call is unchanged
    http = cost_per_million(
        memory_mb=128,
        billed_ms_mean=60.0,
        read_units_per_request=1,
        write_units_per_request=1,
        api="http",
    )
    assert rest.lambda_compute == http.lambda_compute == pytest.approx(0.12500025)
    assert rest.lambda_requests == http.lambda_requests == 0.20
    assert rest.dynamodb == http.dynamodb == pytest.approx(0.75)
    assert (rest.api_gateway, http.api_gateway) == (3.50, 1.00)
    assert rest.total == pytest.approx(4.57500025)
    assert http.total == pytest.approx(2.07500025)
    # 0.12500025 / 4.57500025 = 2.73 %: memory's whole share of the REST bill is under 3 %.
    assert rest.lambda_compute / rest.total == pytest.approx(0.0273224, rel=1e-4)
    assert money(rest.total - http.total) == "$2.50"
    assert money(rest.lambda_compute) == "$0.125"  # under $1: a tenth of a cent shown
    assert "HTTP API: each request metered as one (under 512 KB assumed)" in http.basis
    assert "HTTP API" not in rest.basis


def test_given_arm64_at_1024_mb_and_20_ms_then_a_fifth_cheaper_compute_than_x86() -> None:
    # arm64: 0.020 s x 1024/1024 GB = 0.02 GB-s x $0.0000133334 = $2.66668e-7 x 1M = $0.266668
    # x86:   0.02 GB-s x $0.0000166667 = $3.33334e-7 x 1M = $0.333334
    # 0.266668 / 0.333334 = 0.80000 (Arm's GB-s price is 80 % of x86's)
    arm = cost_per_million(
        memory_mb=1024,
        billed_ms_mean=20.0,
        read_units_per_request=0,
        write_units_per_request=0,
        architecture="arm64",
        api="http",
    )
    x86 = cost_per_million(
        memory_mb=1024, billed_ms_mean=20.0, read_units_per_request=0, write_units_per_request=0
    )
    assert arm.lambda_compute == pytest.approx(0.266668)
    assert x86.lambda_compute == pytest.approx(0.333334)
    assert arm.lambda_compute / x86.lambda_compute == pytest.approx(0.8, rel=1e-5)
    # Requests are $0.20 on either architecture; the API is what was asked for.
    assert (arm.lambda_requests, arm.api_gateway) == (0.20, 1.00)
    assert arm.total == pytest.approx(0.266668 + 0.20 + 1.00)


@pytest.mark.parametrize(
    ("size_bytes", "metered"),
    [
        (0, 1),  # an empty request is still a request
        (900, 1),  # the tutorial's list request and answer: well under one increment
        (524_288, 1),  # exactly 512 KB (512 x 1,024 bytes): one increment
        (524_289, 2),  # one byte over: a second increment is started
        (614_400, 2),  # 600 KB: ceil(614,400 / 524,288) = ceil(1.17) = 2
        (1_572_864, 3),  # 1.5 MB: 1,572,864 / 524,288 = 3 exactly
        (10_485_760, 20),  # 10 MB, the HTTP API's payload limit: 10,485,760 / 524,288 = 20
    ],
)
def test_given_an_http_api_request_size_then_it_is_metered_per_started_512_kb(
    size_bytes: int, metered: int
) -> None:
    assert http_api_requests_metered(size_bytes) == metered


def test_given_600_kb_requests_then_the_http_api_bills_two_per_request_and_rest_one() -> None:
    # 600 KB = 614,400 bytes: 2 increments of 512 KB, so 1M requests bill as 2M: 2 x $1.00.
    # A REST API bills per request whatever its size (up to its 10 MB limit): $3.50.
    http = cost_per_million(
        memory_mb=128,
        billed_ms_mean=1.0,
        read_units_per_request=0,
        write_units_per_request=0,
        api="http",
        request_bytes_mean=614_400,
    )
    rest = cost_per_million(
        memory_mb=128,
        billed_ms_mean=1.0,
        read_units_per_request=0,
        write_units_per_request=0,
        request_bytes_mean=614_400,
    )
    assert http.api_gateway == 2.00
    assert rest.api_gateway == 3.50
    assert (
        "HTTP API: requests of 600.0 KB on average (request + response) metered as 2 each "
        "(512 KB increments, every request assumed of the mean size)"
    ) in http.basis


def test_given_no_such_api_type_or_a_negative_size_then_value_error() -> None:
    with pytest.raises(ValueError, match="API type 'grpc': must be rest or http"):
        cost_per_million(
            memory_mb=128,
            billed_ms_mean=1.0,
            read_units_per_request=0,
            write_units_per_request=0,
            api="grpc",  # type: ignore[arg-type]
        )
    with pytest.raises(ValueError, match="must be a finite size >= 0"):
        http_api_requests_metered(-1)
