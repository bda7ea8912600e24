"""Command line: parses arguments, calls the library, maps errors to messages and exit codes."""

from __future__ import annotations

import argparse
import codecs
import io
import json
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from runner import __version__
from runner.errors import BadInput, MemsweepError

if TYPE_CHECKING:
    from runner.outputs import S3Destination, Uploaded
    from runner.results import Results
    from runner.scenario import Scenario
    from runner.sweep import Sweep


def prog_name() -> str:
    """`memsweep` when run as the installed command, else `python -m runner`."""
    return "memsweep" if Path(sys.argv[0]).stem == "memsweep" else "python -m runner"


DESCRIPTION = """\
memsweep: find the Lambda memory size with the best latency for the money under real
HTTP load, for an API Gateway → Lambda → DynamoDB service.

Set-up and deployment are described in README.md. The stack is serverless.yml + handler.py;
deploy it with `npx serverless deploy --param memory=128`.
"""


_Number = TypeVar("_Number", int, float)
_Written = TypeVar("_Written")


def _number(kind: type[_Number], what: str) -> Callable[[str], _Number]:
    """An argparse type: a number, its range left to the scenario's checks."""

    def parse(text: str) -> _Number:
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None

    return parse


def _memory(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"memory must be a whole number of MB, got {text!r}"
        ) from None


def _whole(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high] (a port, a count of workers)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number {low}-{high}, got {text!r}")
        return value

    return parse


def _seconds(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite duration in (low, high] seconds (a timeout)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not low < value <= high:  # NaN fails every comparison
            raise argparse.ArgumentTypeError(
                f"must be seconds in ({low:g}, {high:g}], got {text!r}"
            )
        return value

    return parse


_port = _whole(0, 65535)  # 0: any free port
# How long a worker waits for its master by default: Locust's own bound (60 hellos, each
# waiting 5 s for an ack: locust.runners in 2.47), stated and made an option.
MASTER_WAIT_S = 300.0
# A run id names one directory under --out: no separators, no "..", nothing hidden.
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _run_id(text: str) -> str:
    if not RUN_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(
            "must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit "
            f"(it names a directory under --out), got {text!r}"
        )
    return text


def _check_out(out: Path, run_id: str | None) -> None:
    """--out must be a directory (or not exist yet) and a named run must not overwrite one."""
    existing = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise BadInput(f"--out {out}: {existing} is not a directory")
    if run_id and (out / run_id / "results.json").exists():
        raise BadInput(
            f"--run-id {run_id}: {out / run_id} already holds a run; choose another run id "
            "or remove that directory"
        )


class _Parser(argparse.ArgumentParser):
    """No abbreviated options, and a parse error in one line.

    argparse expands a prefix by default: `--work 3` ran a whole sweep as `--workers 3`.
    Subparsers are made with the parser's own class, so every subcommand gets this too.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def _did_you_mean(unknown: list[str], parser: argparse.ArgumentParser) -> str:
    """'unrecognized arguments: --work 3 (did you mean --workers?)'."""
    import difflib

    known = [option for action in parser._actions for option in action.option_strings]
    hints = []
    for word in unknown:
        if word.startswith("--"):
            close = difflib.get_close_matches(word.split("=")[0], known, n=1, cutoff=0.6)
            hints += [f"{word.split('=')[0]} → {close[0]}"] if close else []
    text = f"unrecognized arguments: {' '.join(unknown)}"
    if len(hints) == 1:
        return f"{text} (did you mean {hints[0].split(' → ')[1]}?)"
    return f"{text} (did you mean: {', '.join(hints)}?)" if hints else text


def _add_local(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    local = subparsers.add_parser(
        "local",
        help="run the local stack (API Gateway + Lambda + DynamoDB) until Ctrl-C",
        description="Run serverless.yml's stack on this machine: an API Gateway front, a "
        "Lambda pool whose CPU follows the memory size, and dynalite for DynamoDB.",
    )
    local.add_argument("--port", type=_port, default=0, help="front port (default: any free)")
    local.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    local.add_argument("--memory", type=_memory, help="memory size in MB (default: serverless.yml)")
    local.add_argument("--stage", default="dev")
    local.add_argument(
        "--api-key",
        help="API key to require (default: $MEMSWEEP_API_KEY, else a new random key); "
        "any process can read it with `ps`: prefer --api-key-file or $MEMSWEEP_API_KEY",
    )
    local.add_argument("--api-key-file", type=Path, help="read the API key to require from a file")
    local.add_argument("--handler", help="module.function to run instead of serverless.yml's")
    local.add_argument("--code-dir", type=Path, help="directory holding the handler's module")
    local.add_argument(
        "--integration",
        choices=["lambda-proxy", "lambda"],
        help="lambda-proxy (default) or lambda: non-proxy, as the AWS tutorial's original API",
    )
    local.add_argument(
        # Lambda's own range: 1 s to 15 minutes.
        "--timeout",
        type=_seconds(0, 900),
        help="function timeout in s (default: serverless.yml)",
    )
    local.add_argument(
        "--integration-timeout", type=_seconds(0, 900), default=29.0, help="API Gateway's (s)"
    )
    local.add_argument(
        "--request-timeout",
        type=_seconds(0, 3600),
        default=60.0,
        help="a client's time to send a request (s)",
    )
    local.add_argument(
        "--idle-timeout",
        type=_seconds(0, 86400),
        default=600.0,
        help="idle keep-alive connection's life (s)",
    )
    local.add_argument(
        "--concurrency", type=_whole(1, 1000), default=100, help="most sandboxes at once"
    )
    local.add_argument(
        "--no-usage-plan-throttle", action="store_true", help="ignore the usage plan's rate limits"
    )
    local.add_argument("--dynamodb-endpoint", help="use this DynamoDB endpoint, not dynalite")
    local.add_argument("--dynamodb-path", type=Path, help="keep dynalite's data in this directory")
    local.add_argument("--log", type=Path, help="Lambda log file (START/END/REPORT lines)")
    local.add_argument("--latency-ms", type=float, default=0.0, help="added network latency")
    local.add_argument("--cgroup", choices=["auto", "v1", "v2", "none"], default="auto")
    local.add_argument("--no-calibrate", action="store_true", help="skip measuring CPU share")
    local.add_argument("--config-json", type=Path, help=argparse.SUPPRESS)
    local.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    local.add_argument("--json", action="store_true", help="print one JSON line when ready")


def _add_run(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = subparsers.add_parser(
        "run",
        help=f"run a scenario (the default: `{prog_name()} FILE` is `run FILE`)",
        description="Sweep the memory sizes of a scenario under load and write "
        "reports/<run-id>/results.json.",
    )
    run.add_argument("scenario", type=Path, help="scenario YAML file")
    # The scenario's own bounds (workers.local, workers.expect_remote: runner/scenario/_models.py).
    run.add_argument(
        "--workers", type=_whole(0, 256), help="local Locust worker processes (default: cores)"
    )
    run.add_argument("--expect-workers", type=_whole(0, 1000), help="remote workers to wait for")
    run.add_argument(
        "--master-bind-host",
        default="127.0.0.1",
        help="address the Locust master listens on for workers (default: loopback only; "
        "remote workers need a reachable address, on a private network)",
    )
    run.add_argument("--master-port", type=_port, default=0, help="default: any free port")
    run.add_argument(
        "--worker-wait",
        type=_seconds(0, 3600),
        metavar="SECONDS",
        help="how long the master waits for every worker to join, then fails naming how many "
        "did (exit 3); default: the scenario's workers.wait_s (120)",
    )
    target = run.add_argument_group(
        "target", "override the scenario's target (e.g. the same scenario against AWS)"
    )
    target.add_argument("--target", choices=["local", "aws", "url"], help="kind of target")
    target.add_argument("--stage", help="aws: the serverless stage (default: dev)")
    target.add_argument("--region", help="aws: the region (default: the AWS SDK's)")
    target.add_argument("--stack", help="aws: the service name in serverless.yml")
    target.add_argument("--url", help="aws: send load here instead; url: the endpoint")
    run.add_argument("--out", type=Path, default=Path("reports"), help="output directory")
    run.add_argument("--run-id", type=_run_id, help="default: timestamp + scenario name")
    run.add_argument("--quiet", action="store_true", help="one line per step (for CI)")
    run.add_argument(
        "--cost-from",
        type=Path,
        metavar="RESULTS.json",
        help="aws: estimate this test's own AWS charges from an earlier run's billed time per "
        "point (default: 60 ms per call); printed by --dry-run and as the run starts",
    )
    run.add_argument(
        "--upload",
        metavar="s3://BUCKET[/PREFIX]",
        help="when the run ends, however it ends, copy its directory to "
        "s3://BUCKET/PREFIX/<run-id>/ (default: $MEMSWEEP_UPLOAD; --upload '' for none); a "
        "failed upload keeps the local copy and leaves the exit code alone",
    )
    quick = run.add_argument_group(
        "quick tries",
        "change the scenario for this run without editing it; the values meet the same checks "
        "as the file's, and results.json records what ran",
    )
    quick.add_argument(
        "--memory",
        metavar="MB[,MB...]",
        help="memory sizes to sweep, e.g. 256,512 (sweep.memory_mb)",
    )
    quick.add_argument(
        "--until",
        choices=("fixed", "confident"),
        help="fixed: each step runs the profile as written; confident: rounds until the "
        "answer is known (sweep.until)",
    )
    quick.add_argument(
        "--duration",
        metavar="TIME",
        help="each step's load: 20, 20s, 2m (a closed profile's stages and ramps scale to it); "
        "until confident: the most measured per setting (sweep.max_s)",
    )
    model = quick.add_mutually_exclusive_group()
    model.add_argument(
        "--users",
        type=_number(int, "a whole number of users"),
        help="closed model: one stage of N users (replaces the stages, or an open load)",
    )
    model.add_argument(
        "--rate",
        type=_number(float, "a number of requests per second"),
        help="open model: R requests/s (replaces the rate, or a closed load's users)",
    )
    quick.add_argument(
        "--repeats", type=_number(int, "a whole number"), help="times each size is measured"
    )
    quick.add_argument(
        "--dry-run",
        action="store_true",
        help="load the scenario with these changes, print the plan (like validate), run nothing",
    )


def _add_validate(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    validate = subparsers.add_parser(
        "validate",
        help="check a scenario file and print its plan",
        description="Check a scenario file (exit 2 naming file:line: field on a problem) and "
        "print the plan: the steps in order, the estimated duration and the requests expected.",
    )
    validate.add_argument("scenario", type=Path)
    init = subparsers.add_parser(
        "init",
        help="write a commented starter scenario",
        description="Write a commented starter scenario that runs on the local stack as it is. "
        "An existing file is never overwritten.",
    )
    init.add_argument(
        "file", nargs="?", type=Path, default=Path("scenario.yaml"), help="default: scenario.yaml"
    )
    schema = subparsers.add_parser(
        "schema",
        help="write the scenario JSON Schema (or, with --markdown, the key reference)",
        description="Write scenarios/scenario.schema.json (for editors) or, with --markdown, the "
        "key-by-key reference in scenarios/README.md (the part between its markers), both "
        "generated from runner/scenario/_models.py.",
    )
    schema.add_argument("--markdown", action="store_true", help="the Markdown key reference")
    schema.add_argument(
        "-o",
        "--output",
        type=Path,
        help="default: scenarios/scenario.schema.json, or scenarios/README.md with --markdown; "
        "- for stdout",
    )


def _add_report(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = subparsers.add_parser(
        "report",
        help="render results.json as an HTML report (two files: compare the runs)",
        description="Render reports/<run-id>/results.json as one self-contained HTML file. "
        "Given two, put the runs side by side (e.g. before and after a code change) with the "
        "significance of each difference.",
    )
    report.add_argument(
        "results", nargs="+", type=Path, metavar="RESULTS", help="results.json or its run directory"
    )
    report.add_argument(
        "-o",
        "--output",
        type=Path,
        help="default: report.html beside the results (compare-<first run>.html for two)",
    )
    report.add_argument(
        "--json",
        action="store_true",
        help="print JSON instead of writing HTML: one run's verdict, or for two runs whether "
        "the recommendation changed, each difference (memory_mb, metric, a, b, delta, "
        "low, high, significant; the function's own duration_p50_ms and duration_p95_ms "
        "beside the client's) and both runs' measured AWS charges (test_charges)",
    )


def _add_worker(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = subparsers.add_parser(
        "worker",
        help="join a run's Locust master as a load worker (on each extra load machine)",
        description="Runs a Locust worker for memsweep's locustfile. The stock command "
        "`locust --worker -f - --master-host H` works too.",
    )
    worker.add_argument("--master-host", required=True)
    worker.add_argument("--master-port", type=_whole(1, 65535), default=5557)
    worker.add_argument(
        "--master-wait",
        type=_seconds(0, 86400),
        default=MASTER_WAIT_S,
        metavar="SECONDS",
        help="how long to keep trying to join a master that is not there yet (or whose name "
        f"does not resolve yet), then exit 3 in one line (default: {MASTER_WAIT_S:g}, Locust's)",
    )
    worker.add_argument("--quiet", action="store_true")


SUBCOMMANDS = {"run", "validate", "init", "schema", "worker", "local", "report"}
TOP_LEVEL_OPTIONS = {"-h", "--help", "--version"}


def _parse(parser: argparse.ArgumentParser, arguments: list[str]) -> argparse.Namespace:
    """Parse, with `python -m runner FILE ...` meaning `run FILE ...`; exits 2 on bad input."""
    if not arguments:  # nothing to do is a mistake, not a success (a script would go on)
        parser.print_usage(sys.stderr)
        parser.error(f"give a scenario file ({parser.prog} FILE) or a command")
    first = arguments[0]
    if first not in SUBCOMMANDS | TOP_LEVEL_OPTIONS and any(
        not word.startswith("-") for word in arguments
    ):
        if not first.startswith("-") and _looks_like_a_command(first):
            import difflib

            close = difflib.get_close_matches(first, sorted(SUBCOMMANDS), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            parser.error(
                f"{first!r} is neither a command nor a scenario file{hint}; commands: "
                + ", ".join(sorted(SUBCOMMANDS))
            )
        arguments = ["run", *arguments]  # options may come before the file
    args, unknown = parser.parse_known_args(arguments)
    command = _subparser(parser, args.command)
    if unknown:
        command.error(_did_you_mean(unknown, command))
    if args.command is None:
        parser.print_usage(sys.stderr)
        parser.error(f"give a scenario file ({parser.prog} FILE) or a command")
    return args


def _looks_like_a_command(word: str) -> bool:
    """A bare word that is no file: a mistyped command, not a scenario (which has a suffix)."""
    return not Path(word).exists() and "." not in word and os.sep not in word


def _subparser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            found: argparse.ArgumentParser = action.choices[command]
            return found
    return parser


def build_parser() -> argparse.ArgumentParser:
    prog = prog_name()
    parser: argparse.ArgumentParser = _Parser(
        prog=prog,
        description=DESCRIPTION,
        epilog=f"first steps:\n  {prog} init scenario.yaml       a commented starter scenario\n"
        f"  {prog} validate scenario.yaml   check it, print the plan\n"
        f"  {prog} scenario.yaml            run it (report in reports/<run-id>/)\n"
        "every scenario key: scenarios/README.md",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"memsweep {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run(subparsers)
    _add_validate(subparsers)
    _add_report(subparsers)
    _add_worker(subparsers)
    _add_local(subparsers)
    return parser


def _run_scenario(args: argparse.Namespace) -> int:
    from runner.scenario import parse_scenario, read_scenario_text, with_overrides, with_target

    # Read once (bounded, regular files only): the text parsed is the text recorded.
    text = read_scenario_text(args.scenario)
    scenario = parse_scenario(text, path=str(args.scenario))  # fails before anything starts
    scenario = with_target(
        scenario,
        kind=args.target,
        stage=args.stage,
        region=args.region,
        stack=args.stack,
        url=args.url,
    )
    scenario, notes = with_overrides(
        scenario,
        memory=args.memory,
        until=args.until,
        duration=args.duration,
        users=args.users,
        rate=args.rate,
        repeats=args.repeats,
    )
    upload = _upload_destination(args)  # checked before anything starts, a dry run too
    cost_from = _cost_from(args.cost_from)  # a dry run too
    if args.dry_run:
        _print_plan(args.scenario, scenario, notes)
        _print_charges(scenario, cost_from, args.cost_from)
        return 0
    for note in notes:
        print(f"memsweep: {note}", file=sys.stderr)
    changed = _changes(args)
    if changed:  # the file as read, and how this run departed from it
        text += f"\n# run with {changed} (results.json's scenario holds the values used)\n"
    # What can be checked before the run starts is: a run that cannot start leaves no run
    # directory and no report, only one line saying what is missing.
    from runner.load import check_master_address

    check_master_address(args.master_bind_host, args.master_port)
    _check_some_worker(args, scenario)
    _check_out(args.out, args.run_id)
    if scenario.target.kind == "aws":
        from runner.targets import preflight

        preflight(scenario.target)
    from runner.outputs import Progress
    from runner.sweep import Interrupted, RunOptions, Sweep

    with Progress(quiet=args.quiet) as progress:
        sweep = Sweep(
            scenario,
            scenario_path=str(args.scenario),
            scenario_text=text,
            options=RunOptions(
                out_dir=args.out,
                local_workers=args.workers,
                expect_remote=args.expect_workers,
                master_bind_host=args.master_bind_host,
                master_port=args.master_port,
                worker_wait_s=args.worker_wait,
                quiet=args.quiet,
                progress=progress.update,
                run_id=args.run_id or "",
                run_with=changed,
                cost_from=cost_from,
                cost_from_name=str(args.cost_from or ""),
            ),
        )
        sweep.claim()  # refused (exit 2) when another run holds the directory: nothing written
        try:
            sweep.run()
            code = _verdict(sweep)
        except Interrupted as exc:  # the live area said why; the partial results are kept
            code = exc.exit_code
        finally:
            report = _report_after_run(sweep.results_path)
            uploaded = _upload_after_run(sweep.run_dir, upload) if upload else None
            # the step lines, the files, where they were uploaded, the pick: the last line
            progress.done(sweep, report, uploaded)
    return code


def _upload_destination(args: argparse.Namespace) -> S3Destination | None:
    """--upload, else $MEMSWEEP_UPLOAD, as a checked destination; None when neither (or '')."""
    from runner.outputs import UPLOAD_VARIABLE, parse_s3_uri

    if args.upload is not None:
        return parse_s3_uri(args.upload, given="--upload") if args.upload else None
    from_env = os.environ.get(UPLOAD_VARIABLE, "")
    return parse_s3_uri(from_env, given=f"${UPLOAD_VARIABLE}") if from_env else None


def _upload_after_run(run_dir: Path, destination: S3Destination) -> Uploaded | None:
    """The run directory copied to S3 after its report; a failure is one line on stderr, and
    the run's exit code stands (docs/ARCHITECTURE.md, section 1)."""
    if not run_dir.is_dir():  # the run ended before it made its directory: nothing to keep
        return None
    from runner.outputs import UploadFailed, upload_run

    try:
        return upload_run(run_dir, destination)
    except UploadFailed as exc:
        print(f"memsweep: {exc}", file=sys.stderr)
    except Exception as exc:  # a bug: said in one line, the run's outcome unchanged
        if os.environ.get("MEMSWEEP_DEBUG"):
            raise
        print(f"memsweep: upload failed: internal error: {exc!r}", file=sys.stderr)
    return None


def _verdict(sweep: Sweep) -> int:
    """The exit code of a run whose every step ran: the analysis's verdict, which results.json
    keeps, so the report, the CI files and the exit code read one answer."""
    from runner.analysis import analyse, run_verdict

    try:
        verdict = run_verdict(analyse(sweep.results))
    except Exception as exc:  # a bug: results.json says the run failed, as for any other
        sweep.record_failure(f"internal error: {exc!r}")
        raise
    sweep.record_verdict(verdict)
    return verdict.exit_code


def _report_after_run(results_path: Path) -> Path | None:
    """Every run ends with its report, also a failed or interrupted one (partial results),
    and the files other tools read (summary.csv, JUnit XML, a Markdown summary). One failing
    does not stop the other."""
    if not results_path.exists():
        return None
    from runner.outputs import write_exports, write_report

    _after_run(
        "the files for other tools (summary.csv, junit.xml, summary.md)",
        write_exports,
        results_path,
    )
    return _after_run("the report", lambda path: write_report([path]), results_path)


def _after_run(what: str, write: Callable[[Path], _Written], results_path: Path) -> _Written | None:
    """What `write` returns, or None when it failed (said on stderr)."""
    try:
        return write(results_path)
    except Exception as exc:  # the run's own outcome and exit code stand
        # A disk that is full or read-only is not a bug: the same line with or without debug
        if os.environ.get("MEMSWEEP_DEBUG") and not isinstance(exc, OSError | MemsweepError):
            raise
        if isinstance(exc, MemsweepError):
            why = str(exc)
        elif isinstance(exc, OSError):
            why = f"cannot write {exc.filename or 'a file'}: {exc.strerror or exc}"
        else:
            why = f"internal error: {exc!r}"
        print(f"memsweep: {what} not written: {why}", file=sys.stderr)
        return None


def _report(args: argparse.Namespace) -> int:
    from runner.outputs import report_json, write_report

    if args.json:
        print(json.dumps(report_json(args.results), indent=1))
        return 0
    print(write_report(args.results, args.output))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from runner.scenario import load_scenario

    _print_plan(args.scenario, load_scenario(args.scenario), [])
    return 0


def _print_plan(path: Path, scenario: Scenario, notes: list[str]) -> None:
    from runner.scenario import describe_plan

    print(f"{path}: ok: {json.dumps(scenario.name, ensure_ascii=False)}")
    for note in notes:
        print(f"note: {note}")
    for line in describe_plan(scenario).lines():
        print(line)


def _cost_from(path: Path | None) -> Results | None:
    """--cost-from's earlier run, read strictly (a bad file is one line naming it, exit 2)."""
    if path is None:
        return None
    from runner.results import read_results

    try:
        return read_results(path)
    except BadInput as exc:
        raise BadInput(f"--cost-from {exc}") from None


def _print_charges(scenario: Scenario, previous: Results | None, path: Path | None) -> None:
    """What the test itself would cost on AWS: on the aws target, the estimate; on the local
    stack, that it costs nothing here and what the same test would cost on AWS; a url target's
    backend is unknown, so nothing."""
    from runner.analysis import charges_lines, estimate_test_cost, money

    if scenario.target.kind == "url":
        return
    estimate = estimate_test_cost(scenario, previous=previous, previous_name=str(path or ""))
    lines = charges_lines(estimate, before=True)
    if scenario.target.kind == "local":
        print(
            "AWS charges of this test: none (the local stack runs on this machine); "
            f"on the aws target about {money(estimate.total_usd)}"
        )
        return
    for line in lines:
        print(line)


def _changes(args: argparse.Namespace) -> str:
    """The options given that change the scenario, as typed: '--memory 256,512 --duration 20s'
    (the target's kind too: the same file run against AWS is another run)."""
    given = [
        f"--{name} {value:g}" if isinstance(value, float) else f"--{name} {value}"
        for name in ("target", "memory", "until", "duration", "users", "rate", "repeats")
        if (value := getattr(args, name)) is not None
    ]
    return " ".join(given)


def _init(args: argparse.Namespace) -> int:
    from runner.scenario import write_starter

    prog = prog_name()
    path = write_starter(args.file, prog=prog)
    print(f"wrote {path}: a starter scenario that runs on the local stack")
    print(f"  {prog} validate {path}   check it and print the plan")
    print(f"  {prog} {path}            run it")
    return 0


def _schema(args: argparse.Namespace) -> int:
    if args.markdown:
        from runner.scenario import REFERENCE_PATH, reference_markdown, write_reference

        if str(args.output) == "-":
            sys.stdout.write(reference_markdown())
            return 0
        print(write_reference(args.output or REFERENCE_PATH))
        return 0
    from runner.scenario import SCHEMA_PATH, json_schema, write_json_schema

    if str(args.output) == "-":
        print(json.dumps(json_schema(), indent=2))
        return 0
    print(write_json_schema(args.output or SCHEMA_PATH))
    return 0


def _check_some_worker(args: argparse.Namespace, scenario: Any) -> None:
    """No local worker and none expected: nothing would send the load. Said before the target
    starts (it waited for no one, then called every worker lost)."""
    local = args.workers if args.workers is not None else scenario.workers.local
    remote = (
        args.expect_workers if args.expect_workers is not None else scenario.workers.expect_remote
    )
    if local == 0 and not remote:
        where = "--workers 0" if args.workers is not None else "workers.local: 0"
        raise BadInput(
            f"{where} and no remote workers expected: no Locust worker would send the load; "
            "give --expect-workers N for workers started elsewhere (python -m runner worker "
            "--master-host ...), or --workers 1 or more"
        )


def _worker(args: argparse.Namespace) -> int:
    from runner.load import exec_worker

    exec_worker(
        args.master_host, args.master_port, quiet=args.quiet, master_wait_s=args.master_wait
    )
    return 0  # not reached: the process is now the Locust worker


def _local_api_key(args: argparse.Namespace) -> str | None:
    """The key `runner local` requires: --api-key-file, --api-key, $MEMSWEEP_API_KEY or none."""
    from runner.targets import API_KEY_VARIABLE, check_api_key, read_api_key_file

    if args.api_key is not None and args.api_key_file is not None:
        raise BadInput("--api-key and --api-key-file are both given: give the key one way")
    if args.api_key_file is not None:
        key = read_api_key_file(args.api_key_file, "--api-key-file")
        return check_api_key(key, f"--api-key-file {args.api_key_file}")
    if args.api_key is not None:
        return check_api_key(args.api_key, "--api-key") if args.api_key else None
    from_env = os.environ.get(API_KEY_VARIABLE, "")
    return check_api_key(from_env, f"${API_KEY_VARIABLE}") if from_env else None


def _run_local(args: argparse.Namespace) -> int:
    from runner.emulator import LocalStackOptions, check_memory, run

    params = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise BadInput(f"--param must be NAME=VALUE, got {item!r}")
        params[name] = value
    options = LocalStackOptions(
        host=args.host,
        port=args.port,
        stage=args.stage,
        memory_mb=check_memory(args.memory) if args.memory is not None else None,
        api_key=_local_api_key(args),
        handler=args.handler,
        code_dir=args.code_dir,
        integration=args.integration,
        timeout_s=args.timeout,
        integration_timeout_s=args.integration_timeout,
        request_timeout_s=args.request_timeout,
        idle_timeout_s=args.idle_timeout,
        concurrency=args.concurrency,
        usage_plan_throttle=not args.no_usage_plan_throttle,
        dynamodb_endpoint=args.dynamodb_endpoint,
        dynamodb_path=args.dynamodb_path,
        log_path=args.log,
        added_latency_ms=args.latency_ms,
        cgroup=args.cgroup,
        calibrate=not args.no_calibrate,
        config_json=args.config_json,
        params=params,
    )
    run(options, json_ready=args.json)
    return 0


# What memsweep prints beyond ASCII, and what a terminal that cannot show it gets instead
# (an ASCII-only locale or PYTHONIOENCODING=ascii): the plan's ÷ and a confidence line's ≤
# ended a successful run with "internal error", exit 3, while its results.json said 0.
PLAIN_SYMBOLS = {
    "≤": "<=", "≥": ">=", "÷": "/", "×": "x", "±": "+/-", "–": "-", "—": "-", "·": "-",
    "…": "...", "→": "->", "←": "<-", "µ": "u", "Δ": "d", "\u2018": "'", "\u2019": "'", "“": '"',
    "”": '"', "\u2044": "/", "½": "1/2", "²": "^2", "≈": "~", "✓": "ok", "✗": "x", "•": "*",
}  # fmt: skip


def _plain(error: UnicodeError) -> tuple[str, int]:
    """A codec error handler: each symbol the stream cannot encode as its ASCII spelling."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    text = error.object[error.start : error.end]
    return "".join(PLAIN_SYMBOLS.get(char, "?") for char in text), error.end


codecs.register_error("memsweep-plain", _plain)


def _plain_streams() -> None:
    """stdout and stderr spell memsweep's symbols in ASCII where their encoding lacks them."""
    for stream in (sys.stdout, sys.stderr):
        encoding = getattr(stream, "encoding", None) or "ascii"
        try:
            "".join(PLAIN_SYMBOLS).encode(encoding)
        except (UnicodeEncodeError, LookupError):
            if isinstance(stream, io.TextIOWrapper):
                stream.reconfigure(errors="memsweep-plain")


def main(argv: Sequence[str] | None = None) -> int:
    _plain_streams()
    parser = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = _parse(parser, arguments)
    commands = {
        "run": _run_scenario,
        "validate": _validate,
        "init": _init,
        "schema": _schema,
        "worker": _worker,
        "local": _run_local,
        "report": _report,
    }
    try:
        return commands[args.command](args)
    except MemsweepError as exc:
        print(f"memsweep: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("memsweep: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (`... | head`): no bug, nothing more to say
        # Python's signal docs: point stdout at devnull so the exit flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13  # what a shell reports for a process ended by SIGPIPE
    except Exception as exc:  # one line for the user; the trace on request
        if os.environ.get("MEMSWEEP_DEBUG"):
            raise
        print(
            f"memsweep: internal error: {type(exc).__name__}: {exc} "
            "(a bug: set MEMSWEEP_DEBUG=1 to see the traceback, and please report it)",
            file=sys.stderr,
        )
        return 3
