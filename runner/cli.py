"""Command line: parses arguments, calls the library, maps errors to messages and exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from runner import __version__
from runner.errors import MemsweepError

DESCRIPTION = """\
memsweep: find the Lambda memory size with the best latency for the money under real
HTTP load, for an API Gateway → Lambda → DynamoDB service.

Set-up and deployment are described in README.md. The stack is serverless.yml + handler.py;
deploy it with `npx serverless deploy --param memory=128`.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runner",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"memsweep {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        del args  # no subcommands yet: the runner lands with its own issue
        parser.print_help()
        return 0
    except MemsweepError as exc:
        print(f"memsweep: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("memsweep: interrupted", file=sys.stderr)
        return 130
