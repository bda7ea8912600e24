"""Targets: where the load goes and how memory is changed. One interface, three kinds."""

from __future__ import annotations

from runner.scenario import AwsTarget, LocalTarget, UrlTarget
from runner.targets.base import Target


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
        from runner.targets.local import LocalStackTarget

        target = LocalStackTarget(spec, run_dir=run_dir, memory_mb=first_memory_mb)
    elif isinstance(spec, AwsTarget):
        from runner.targets.aws import AwsStackTarget

        target = AwsStackTarget(spec)
    else:
        from runner.targets.url import UrlOnlyTarget

        target = UrlOnlyTarget(spec)
    return target


__all__ = ["Target", "make_target"]
