"""The container image (Dockerfile) checked without Docker: no engine runs on these machines.

What can be checked is: the base is pinned, every COPY source is in the build context the
.dockerignore leaves, the RUN install command as written succeeds in a fresh virtual
environment (tests/image.py lays the image's files out as its COPY lines do and runs it
there), the entrypoint's commands run from that environment, the files memsweep reads beside
runner/ at run time are in the image, and no test tool is. test_kubernetes.py runs the pods'
commands on the same emulated image.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import pytest

from runner import __version__
from runner.stack import PROJECT_ROOT
from tests.image import Dockerfile, Image, allowed, context_files, ignore_patterns, shared_image

# What docker-library/repo-info lists for the tag (repos/python/remote/<tag>.md): a digest is
# sha256 and 64 hex digits.
PINNED = re.compile(r"python:(?P<version>3\.\d+\.\d+)-slim-(?P<debian>[a-z]+)@sha256:[0-9a-f]{64}")


@pytest.fixture(scope="module")
def image() -> Image:
    return shared_image()


def run_in(image: Image, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """A command in the image: its environment only, from its WORKDIR."""
    image.workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        argv,
        cwd=image.workdir,
        env=image.process_env({"HOME": str(image.workdir)}),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_given_the_dockerfile_then_the_base_is_an_official_slim_python_pinned_by_digest() -> None:
    dockerfile = Dockerfile.read()
    (base,) = dockerfile.all("FROM")
    pinned = PINNED.fullmatch(base.arguments)
    assert pinned, base.arguments
    # The Python minor the tests run is the image's.
    assert pinned["version"].rsplit(".", 1)[0] == f"{sys.version_info[0]}.{sys.version_info[1]}"


def test_given_every_copy_then_its_source_is_in_the_build_context() -> None:
    patterns = ignore_patterns()
    for sources, _destination, _workdir in Dockerfile.read().copies():
        for source in sources:
            assert (PROJECT_ROOT / source).exists(), f"COPY {source}: no such file"
            assert context_files(source.rstrip("/"), patterns), f"COPY {source}: .dockerignored"
    # The context leaves out what must not reach an image: the clone's history, the Node
    # tools, reports, caches, tests.
    for path in (".git/config", "node_modules/osls/package.json", "reports/x/results.json"):
        assert not allowed(path, patterns), path
    for path in ("runner/__pycache__/cli.cpython-311.pyc", "tests/test_container.py"):
        assert not allowed(path, patterns), path


def test_given_the_install_command_as_written_then_it_succeeds_in_a_fresh_venv(
    image: Image,
) -> None:
    (install,) = [c for c in Dockerfile.read().run_commands() if c[0][:2] == ["pip", "install"]]
    words, workdir = install
    assert "--only-binary=:all:" in words  # the slim image has no compiler
    assert workdir == "/opt/memsweep" and (image.path(workdir) / "serverless.yml").exists()
    assert (image.venv / "bin" / "memsweep").exists(), image.install_log[-3000:]


def test_given_the_image_then_its_entrypoint_runs(image: Image) -> None:
    dockerfile = Dockerfile.read()
    assert dockerfile.one("ENTRYPOINT").words() == ["memsweep"]
    version = run_in(image, ["memsweep", "--version"])
    assert (version.returncode, version.stdout.strip()) == (0, f"memsweep {__version__}")
    # The CMD (help), and a scenario the image ships.
    assert run_in(image, ["memsweep", *dockerfile.one("CMD").words()]).returncode == 0
    shipped = image.path("/opt/memsweep/scenarios/memory_sweep.yaml")
    checked = run_in(image, ["memsweep", "validate", str(shipped)])
    assert checked.returncode == 0 and ": ok: " in checked.stdout, checked.stderr


def test_given_the_image_then_the_files_read_beside_runner_are_in_it(image: Image) -> None:
    """serverless.yml (the usage plan a url target's seeding paces to) and the charting library
    every report inlines, read through the image's own package."""
    probe = (
        "from runner.stack import PROJECT_ROOT, default_rate_limit\n"
        "from runner.outputs._report import chart_library\n"
        "print(PROJECT_ROOT, default_rate_limit().rate, len(chart_library()))\n"
    )
    done = run_in(image, ["python", "-c", probe])
    assert done.returncode == 0, done.stderr
    root, rate, chart = done.stdout.split()
    assert root == str(image.path("/opt/memsweep")) and float(rate) > 0 and int(chart) > 100_000


def test_given_the_image_then_it_holds_the_runtime_dependencies_and_no_test_tool(
    image: Image,
) -> None:
    listing = (
        "import importlib.metadata as m\n"
        "print('\\n'.join(sorted(d.metadata['Name'].lower() for d in m.distributions())))\n"
    )
    done = run_in(image, ["python", "-c", listing])
    installed = set(done.stdout.split())
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    name = re.compile(r"[A-Za-z0-9._-]+")

    def names(requirements: list[str]) -> set[str]:
        found = {m.group(0).lower().replace("_", "-") for r in requirements if (m := name.match(r))}
        return found

    runtime = names(project["dependencies"])
    tests = names(project["optional-dependencies"]["test"])
    assert runtime <= installed, runtime - installed
    assert not tests & installed, tests & installed
    assert not {"pytest", "playwright", "pluggy"} & installed


def test_given_the_image_then_it_runs_as_a_numeric_non_root_user() -> None:
    dockerfile = Dockerfile.read()
    user = dockerfile.one("USER").arguments
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and gid.isdigit() and int(uid) != 0 and int(gid) != 0
    (made,) = [c for c, _ in dockerfile.run_commands() if c[0] == "useradd"]
    assert made[made.index("--uid") + 1] == uid
