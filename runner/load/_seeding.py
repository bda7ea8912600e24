"""Reset and seed the table before a step, through the API, within the API's usage plan.

The API Gateway usage plan (serverless.yml: provider.apiGateway.usagePlan.throttle) is a
token bucket; requests beyond it get 429 Too Many Requests, and AWS's advice is to resubmit
them "in a way that is rate limiting" (API Gateway developer guide, "Throttle requests to
your REST APIs"). So every seeding request waits for a slot at a safe fraction of the plan's
rate, a 429 halves that pace, and 429s, 5xx and dropped connections are retried with bounded
exponential backoff. A target that can empty its table directly (the local stack's dynalite)
does so, spending none of the plan.

Requests run on a few greenlets that never let an exception escape them: a failure comes
back as a value, the others stop taking work, and the caller gets one SeedingFailed whose
message is the line the user sees.
"""

from __future__ import annotations

import http.client
import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import gevent
import gevent.event
from geventhttpclient import HTTPClient
from geventhttpclient.url import URL

from runner.errors import MemsweepError
from runner.scenario import Scenario, Seed
from runner.stack import RateLimit, default_rate_limit
from runner.targets import ClearsTable, KnowsRateLimit, Target

# Requests in flight at once: enough to keep a paced stream going over ~100 ms round trips.
CONCURRENCY = 8
# Pace at this share of the plan's rate: API Gateway applies its throttle "on a best-effort
# basis", so a client exactly at the limit still sees 429s; the margin absorbs that and clock
# jitter between the client and the bucket.
SAFE_FRACTION = 0.8
# After a 429 the pace halves (never below this), once per batch of requests sent at that
# pace (the requests already in flight meet the same empty bucket: one halving, not eight),
# then grows by this share per success back to the ceiling: a client-side rate limiter, as
# the AWS SDKs' adaptive retry mode keeps one.
MIN_RATE_PER_S = 1.0
RECOVERY_SHARE = 0.02
# Retries per request and the time one request may spend retrying. The AWS SDKs' standard
# mode retries throttling, 500/502/503/504 and connection failures with exponential backoff
# and jitter (AWS SDKs and Tools reference guide, "Retry behavior"); its 3 attempts are for a
# single call, a seeding pass of thousands needs to ride out a longer throttle.
MAX_RETRIES = 6
RETRY_WINDOW_S = 30.0
BACKOFF_BASE_S = 0.2
BACKOFF_CAP_S = 5.0
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
CONNECT_TIMEOUT_S = 10.0
NETWORK_TIMEOUT_S = 30.0
# `list` pages until the table is empty; a table larger than this many pages is not reset.
MAX_LIST_PAGES = 100_000

T = TypeVar("T")


class SeedingFailed(MemsweepError):
    """Seeding could not finish; the message is the one line the user sees (exit 3)."""

    exit_code = 3


@dataclass
class SeedStats:
    """What a seeding pass sent and what came back (for tests and the progress line)."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0  # 429 answers
    server_errors: int = 0  # 5xx answers
    connection_errors: int = 0
    cleared_directly: bool = False


@dataclass
class SeedResult:
    ids: list[str] = field(default_factory=list)
    stats: SeedStats = field(default_factory=SeedStats)


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = MAX_RETRIES
    window_s: float = RETRY_WINDOW_S
    base_s: float = BACKOFF_BASE_S
    cap_s: float = BACKOFF_CAP_S

    def delay(self, attempt: int) -> float:
        """Exponential backoff with jitter (half fixed, half random), capped."""
        ceiling: float = min(self.cap_s, self.base_s * 2.0**attempt)
        return ceiling * random.uniform(0.5, 1.0)


class Pacer:
    """Gives out evenly spaced send slots at `rate`/s; None sends unpaced.

    Cooperative (gevent): taking a slot never yields between reading and moving the clock,
    so greenlets sharing a pacer need no lock.
    """

    def __init__(self, rate: float | None) -> None:
        self.ceiling = rate
        self.rate = rate
        self._next = 0.0
        self._cut_at = 0.0  # when the pace was last halved

    def wait(self) -> float:
        """Sleep until this request's slot; returns the slot's time (for throttled())."""
        now = time.monotonic()
        if self.rate is None:
            return now
        slot = max(now, self._next)
        self._next = slot + 1.0 / self.rate
        if slot > now:
            gevent.sleep(slot - now)
        return slot

    def throttled(self, sent_at: float) -> None:
        """A 429 for a request sent at `sent_at`: halve the pace, unless it was already
        halved after that request left (it was sent at the old pace)."""
        if self.rate is None or self.ceiling is None or sent_at < self._cut_at:
            return
        self.rate = max(min(MIN_RATE_PER_S, self.ceiling), self.rate / 2)
        self._cut_at = time.monotonic()

    def succeeded(self) -> None:
        if self.rate is not None and self.ceiling is not None:
            self.rate = min(self.ceiling, self.rate * (1 + RECOVERY_SHARE))


def paced_rate(limit: RateLimit | None) -> float | None:
    """The rate seeding sends at under a usage plan (None: no plan, no pacing).

    Evenly spaced, no burst: the plan's bucket may have been emptied by the step's load that
    just ended, so seeding never counts on it being full.
    """
    if limit is None or limit.rate <= 0:
        return None
    return limit.rate * SAFE_FRACTION


def rate_limit_of(target: Target) -> RateLimit | None:
    if isinstance(target, KnowsRateLimit):
        return target.rate_limit()
    return default_rate_limit()


class Seeder:
    """Sends the handler's operations to one API, paced and retried, on a few greenlets."""

    def __init__(
        self,
        *,
        url: str,
        headers: dict[str, str],
        limit: RateLimit | None,
        retry: RetryPolicy | None = None,
        concurrency: int = CONCURRENCY,
        should_stop: Callable[[], bool] = lambda: False,
        stats: SeedStats | None = None,
        table_name: str | None = None,
    ) -> None:
        self.url = URL(url)
        # Named in every body when the scenario's requests name it: the tutorial's original
        # handler (the handler axis) has no default table and fails a body without one.
        self.table = {"tableName": table_name} if table_name else {}
        self.headers = {"Content-Type": "application/json", **headers}
        self.pacer = Pacer(paced_rate(limit))
        self.retry = retry or RetryPolicy()
        self.concurrency = concurrency
        self.should_stop = should_stop
        self.stats = stats if stats is not None else SeedStats()
        self._client = HTTPClient.from_url(
            self.url,
            concurrency=concurrency,
            connection_timeout=CONNECT_TIMEOUT_S,
            network_timeout=NETWORK_TIMEOUT_S,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Seeder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """One operation, retried on 429/5xx/connection failures; SeedingFailed at the end."""
        operation = body.get("operation", "?")
        first = time.monotonic()
        retries = 0
        payload = json.dumps({**body, **self.table})
        while True:
            sent_at = self.pacer.wait()
            self.stats.requests += 1
            wait_at_least = 0.0
            try:
                response = self._client.post(
                    self.url.request_uri, body=payload, headers=self.headers
                )
                status = response.status_code
                text = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.stats.connection_errors += 1
                problem = f"{operation}: {_one_line(str(exc) or type(exc).__name__)}"
            else:
                if status == 200:
                    self.pacer.succeeded()
                    return _json_object(text, operation)
                problem = f"{operation} answered {status}: {_excerpt(text)}"
                if status not in RETRYABLE_STATUS:
                    raise SeedingFailed(f"seeding failed: {problem}")
                if status == 429:
                    self.stats.throttled += 1
                    self.pacer.throttled(sent_at)
                else:
                    self.stats.server_errors += 1
                wait_at_least = _retry_after(response.get("Retry-After"))
            elapsed = time.monotonic() - first
            if retries >= self.retry.retries or elapsed >= self.retry.window_s:
                raise SeedingFailed(
                    f"seeding failed: {problem} after {retries} retries over {elapsed:.1f} s"
                )
            delay = max(self.retry.delay(retries), min(wait_at_least, self.retry.cap_s))
            retries += 1
            self.stats.retries += 1
            gevent.sleep(min(delay, max(0.0, self.retry.window_s - elapsed)))

    def run_all(self, bodies: Iterable[dict[str, Any]]) -> None:
        """POST every body; the first failure stops the others and is raised here, once."""
        _run_all(list(bodies), self.post, concurrency=self.concurrency, stop=self.should_stop)

    def clear_through_api(self) -> None:
        """Page through the table's ids with `list` and delete each (all paced)."""
        cursor: dict[str, Any] | None = None
        for _ in range(MAX_LIST_PAGES):
            if self.should_stop():
                return
            page = self.post(
                {
                    "operation": "list",
                    "payload": {
                        "ProjectionExpression": "id",
                        **({"ExclusiveStartKey": cursor} if cursor else {}),
                    },
                }
            )
            items = page.get("Items") or []
            self.run_all(
                {"operation": "delete", "payload": {"Key": {"id": item["id"]}}}
                for item in items
                if isinstance(item, dict) and "id" in item
            )
            cursor = page.get("LastEvaluatedKey")
            if not cursor:
                return
        raise SeedingFailed(f"seeding failed: the table has over {MAX_LIST_PAGES} pages to reset")

    def create(self, items: Sequence[dict[str, Any]]) -> None:
        self.run_all({"operation": "create", "payload": {"Item": item}} for item in items)


def _run_all(
    calls: list[T], work: Callable[[T], object], *, concurrency: int, stop: Callable[[], bool]
) -> None:
    """Run `work` over `calls` on `concurrency` greenlets. Each greenlet catches what its work
    raises, so none dies with an exception (which gevent's hub would print as a traceback);
    the first failure is raised in the caller."""
    pending = iter(calls)
    failures: list[Exception] = []
    failed = gevent.event.Event()

    def worker() -> None:
        for call in pending:
            if failures or stop():
                return
            try:
                work(call)
            except Exception as exc:  # noqa: BLE001 - handed to the caller below, once
                failures.append(exc)
                failed.set()
                return

    greenlets = [gevent.spawn(worker) for _ in range(min(concurrency, len(calls)))]
    try:
        running = list(greenlets)
        while running and not failures:
            gevent.wait([*running, failed], count=1)
            running = [greenlet for greenlet in running if not greenlet.dead]
    finally:
        # After a failure (or an interrupt in the caller) the others are stopped mid-retry:
        # GreenletExit is no error to gevent's hub, so this prints nothing.
        gevent.killall(greenlets)
    if failures:
        first = failures[0]
        if isinstance(first, MemsweepError):
            raise first
        raise SeedingFailed(f"seeding failed: {first!r}")


def seed_table(
    seed: Seed,
    target: Target,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    render: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    table_name: str | None = None,
) -> SeedResult:
    """Reset (directly when the target can, else through the API) and create the items.

    `render` fills the item's templates; by default the load's own (locustfile.py),
    imported only here because importing Locust monkey-patches the whole process.
    """
    result = SeedResult()
    if not seed.reset and seed.items == 0:
        return result
    if seed.reset and isinstance(target, ClearsTable):
        result.stats.cleared_directly = target.clear_table()
    needs_api = (seed.reset and not result.stats.cleared_directly) or seed.items > 0
    if not needs_api:
        return result
    if render is None:
        from runner.load.locustfile import Templates

        render = Templates([]).render
    items = [render(seed.item) for _ in range(seed.items)]
    with Seeder(
        url=target.url,
        headers=target.headers(),
        limit=rate_limit_of(target),
        should_stop=should_stop,
        stats=result.stats,
        table_name=table_name,
    ) as seeder:
        if seed.reset and not result.stats.cleared_directly:
            seeder.clear_through_api()
        seeder.create(items)
    result.ids = [str(item.get("id")) for item in items if "id" in item]
    return result


def seed_items(
    scenario: Scenario, target: Target, *, should_stop: Callable[[], bool] = lambda: False
) -> list[str]:
    """Reset and seed the table before a step; the ids written (for `{{seeded}}`)."""
    return seed_table(
        scenario.seed, target, should_stop=should_stop, table_name=requests_table(scenario)
    ).ids


def requests_table(scenario: Scenario) -> str | None:
    """The table the scenario's requests name (`tableName` in their bodies), if they name
    exactly one: seeding writes where the load reads."""
    names = {
        spec.body.get("tableName")
        for spec in scenario.requests
        if isinstance(spec.body, dict) and isinstance(spec.body.get("tableName"), str)
    }
    return names.pop() if len(names) == 1 else None


def _json_object(text: bytes, operation: str) -> dict[str, Any]:
    try:
        document = json.loads(text) if text else {}
    except ValueError:
        raise SeedingFailed(
            f"seeding failed: {operation} answered 200 with a body that is not JSON: "
            f"{_excerpt(text)}"
        ) from None
    if not isinstance(document, dict):
        raise SeedingFailed(
            f"seeding failed: {operation} answered 200 with {type(document).__name__}, "
            "not a JSON object"
        )
    return document


def _retry_after(value: str | list[str] | None) -> float:
    """Seconds from a Retry-After header (delta-seconds form only; dates are ignored)."""
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        seconds = float(value) if value else 0.0
    except ValueError:
        return 0.0
    return seconds if 0 <= seconds < float("inf") else 0.0


def _excerpt(text: bytes, limit: int = 200) -> str:
    return _one_line(text[:limit].decode("utf-8", errors="replace")) or "(empty body)"


def _one_line(text: str) -> str:
    return " ".join(text.split())
