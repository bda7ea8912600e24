"""Cost per million requests, checked against hand-worked AWS pricing arithmetic."""

from __future__ import annotations

import pytest

from runner.cost import PRICES_US_EAST_1, cost_per_million, lambda_compute_cost


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
