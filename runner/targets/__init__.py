"""Targets: where the load goes and how a point is applied. One interface, three kinds.

- `_base`: the `Target` interface and its optional capabilities (`KnowsRateLimit`,
  `ClearsTable`)
- `_local`: the local stack as a target; `_local_client`: its child process and control API
- `_aws`: a stack deployed with `npx serverless deploy` (boto3, CloudFormation, CloudWatch)
- `_url`: any HTTP endpoint; sizes are labels only

The kinds are imported when first used (`make_target`, or a name below): a run imports only
what its target needs (boto3 for aws, nothing of it for a local run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.lazy import lazy_names
from runner.scenario import AwsTarget, LocalTarget, UrlTarget
from runner.targets._base import ClearsTable, KnowsRateLimit, Target

if TYPE_CHECKING:
    from runner.targets._aws import AwsStackTarget, AwsTargetError, preflight
    from runner.targets._local import LocalStackTarget
    from runner.targets._local_client import LocalStackProcess
    from runner.targets._url import (
        API_KEY_VARIABLE,
        UrlOnlyTarget,
        check_api_key,
        read_api_key_file,
    )

_WHERE = {
    "AwsStackTarget": "runner.targets._aws",
    "AwsTargetError": "runner.targets._aws",
    "preflight": "runner.targets._aws",
    "LocalStackTarget": "runner.targets._local",
    "LocalStackProcess": "runner.targets._local_client",
    "API_KEY_VARIABLE": "runner.targets._url",
    "UrlOnlyTarget": "runner.targets._url",
    "check_api_key": "runner.targets._url",
    "read_api_key_file": "runner.targets._url",
}

__getattr__ = lazy_names(__name__, _WHERE)


def make_target(
    spec: LocalTarget | AwsTarget | UrlTarget, *, run_dir: str, first_memory_mb: int | None = None
) -> Target:
    """The target a scenario names, not started: `with target:` starts and stops it (imports
    only what that kind needs).

    first_memory_mb: the size the sweep starts at; a local stack starts there, so it does not
    calibrate a size the sweep never runs (128 MB, serverless.yml's, takes ~2.5 s).
    """
    target: Target
    if isinstance(spec, LocalTarget):
        from runner.targets._local import LocalStackTarget

        target = LocalStackTarget(spec, run_dir=run_dir, memory_mb=first_memory_mb)
    elif isinstance(spec, AwsTarget):
        from runner.targets._aws import AwsStackTarget

        target = AwsStackTarget(spec)
    else:
        from runner.targets._url import UrlOnlyTarget

        target = UrlOnlyTarget(spec)
    return target


__all__ = [
    "API_KEY_VARIABLE",
    "AwsStackTarget",
    "AwsTargetError",
    "ClearsTable",
    "KnowsRateLimit",
    "LocalStackProcess",
    "LocalStackTarget",
    "Target",
    "UrlOnlyTarget",
    "check_api_key",
    "make_target",
    "preflight",
    "read_api_key_file",
]
