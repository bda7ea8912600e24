"""Targets: where the load goes and how memory is changed. One interface, three kinds."""

from __future__ import annotations

from runner.scenario import AwsTarget, LocalTarget, UrlTarget
from runner.targets.base import Target


def make_target(spec: LocalTarget | AwsTarget | UrlTarget, *, run_dir: str) -> Target:
    """The target a scenario names (imports only what that kind needs)."""
    target: Target
    if isinstance(spec, LocalTarget):
        from runner.targets.local import LocalStackTarget

        target = LocalStackTarget(spec, run_dir=run_dir)
    elif isinstance(spec, AwsTarget):
        from runner.targets.aws import AwsStackTarget

        target = AwsStackTarget(spec)
    else:
        from runner.targets.url import UrlOnlyTarget

        target = UrlOnlyTarget(spec)
    return target


__all__ = ["Target", "make_target"]
