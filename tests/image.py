"""The Dockerfile without Docker: what can be checked of the image on a machine with no engine.

`Dockerfile` reads the instructions as Docker does (comments, line continuations, JSON and shell
forms); `allowed` applies `.dockerignore` (moby's rules: a pattern matches a path or any of its
parents, `**` spans directories, the last matching line wins, `!` re-includes); `emulate` lays
the image's files out under a directory as its COPY lines would (from the build context the
`.dockerignore` leaves) and runs its install in a fresh virtual environment standing in for the
base image's Python, with the RUN lines' own command lines.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from runner.stack import PROJECT_ROOT

DOCKERFILE = PROJECT_ROOT / "Dockerfile"
DOCKERIGNORE = PROJECT_ROOT / ".dockerignore"
# The commands the image's RUN lines may hold, and whether the emulation runs them here:
# pip and python run in the virtual environment; useradd would change this machine (the test
# checks the user it makes against USER and the pods' runAsUser instead).
RUN_HERE = {"pip", "python"}
RUN_NOT_HERE = {"useradd"}


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, COPY, RUN, ...
    arguments: str  # as written, continuations joined

    def words(self) -> list[str]:
        """JSON form (`["a", "b"]`) or shell words."""
        if self.arguments.lstrip().startswith("["):
            words: list[str] = json.loads(self.arguments)
            return words
        return shlex.split(self.arguments)


@dataclass
class Dockerfile:
    instructions: list[Instruction]

    @classmethod
    def read(cls, path: Path = DOCKERFILE) -> Dockerfile:
        instructions: list[Instruction] = []
        pending = ""
        for line in path.read_text().splitlines():
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if pending and line.lstrip().startswith("#"):
                continue  # a comment inside a continued instruction is dropped, as Docker does
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            keyword, _, arguments = (pending + line).strip().partition(" ")
            instructions.append(Instruction(keyword.upper(), " ".join(arguments.split())))
            pending = ""
        if pending:
            raise ValueError(f"{path}: ends inside a continued line")
        return cls(instructions)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def one(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        if len(found) != 1:
            raise ValueError(f"expected one {keyword}, found {len(found)}")
        return found[0]

    def env(self) -> dict[str, str]:
        """Every ENV, in order (KEY=VALUE pairs)."""
        variables: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for word in shlex.split(instruction.arguments):
                key, sep, value = word.partition("=")
                if not sep:
                    raise ValueError(f"ENV {instruction.arguments}: only the KEY=VALUE form")
                variables[key] = value
        return variables

    def final_workdir(self) -> str:
        return self.all("WORKDIR")[-1].arguments

    def copies(self) -> list[tuple[list[str], str, str]]:
        """(sources, destination, the WORKDIR it is relative to) per COPY."""
        found = []
        workdir = "/"
        for instruction in self.instructions:
            if instruction.keyword == "WORKDIR":
                workdir = str(PurePosixPath(workdir) / instruction.arguments)
            if instruction.keyword == "COPY":
                words = instruction.words()
                if any(word.startswith("--") for word in words):
                    raise ValueError(f"COPY {instruction.arguments}: flags are not modelled")
                found.append((words[:-1], words[-1], workdir))
        return found

    def run_commands(self) -> list[tuple[list[str], str]]:
        """Each command of each RUN (split at &&), with the WORKDIR it runs in."""
        commands = []
        workdir = "/"
        for instruction in self.instructions:
            if instruction.keyword == "WORKDIR":
                workdir = str(PurePosixPath(workdir) / instruction.arguments)
            if instruction.keyword == "RUN":
                for part in instruction.arguments.split("&&"):
                    commands.append((shlex.split(part), workdir))
        return commands


# -- .dockerignore --------------------------------------------------------------------------


def ignore_patterns(path: Path = DOCKERIGNORE) -> list[tuple[bool, str]]:
    """(is an exception, pattern) per line, cleaned as moby does."""
    patterns = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = os.path.normpath(line[1:].strip() if exception else line).lstrip("/")
        patterns.append((exception, pattern))
    return patterns


def _matches(pattern: str, path: str) -> bool:
    regex = _go_match(pattern)
    candidates = [path] + [str(p) for p in PurePosixPath(path).parents if str(p) != "."]
    return any(regex.fullmatch(candidate) for candidate in candidates)


def _go_match(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: * and ? stay within a path segment, ** spans any."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            if pattern.startswith("/", i):
                out.append("/?")
                i += 1
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def allowed(relative: str, patterns: list[tuple[bool, str]]) -> bool:
    """Whether a path of the build context survives .dockerignore."""
    excluded = False
    for exception, pattern in patterns:
        if _matches(pattern, relative):
            excluded = not exception
    return not excluded


def context_files(source: str, patterns: list[tuple[bool, str]]) -> list[str]:
    """The files under a COPY source that the build context holds (relative to the root)."""
    path = PROJECT_ROOT / source
    if path.is_file():
        return [source] if allowed(source, patterns) else []
    found = []
    for directory, _dirs, files in os.walk(path):
        for name in files:
            relative = str((Path(directory) / name).relative_to(PROJECT_ROOT))
            if allowed(relative, patterns):
                found.append(relative)
    return sorted(found)


# -- the emulation --------------------------------------------------------------------------


@dataclass
class Image:
    """The image's files under `root`, its Python a virtual environment at `venv`."""

    root: Path
    venv: Path
    dockerfile: Dockerfile
    env: dict[str, str] = field(default_factory=dict)
    install_s: float = 0.0
    install_log: str = ""

    def path(self, inside: str) -> Path:
        """Where a path of the image lies here."""
        return self.root / inside.lstrip("/")

    @property
    def workdir(self) -> Path:
        return self.path(self.dockerfile.final_workdir())

    def process_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """A process's environment in the image: its ENV (paths mapped here), the venv first on
        PATH where the image's Python has /usr/local/bin, and `extra`."""
        env = {"LANG": "C.UTF-8"}  # the base image's
        for key, value in {**self.env, **(extra or {})}.items():
            env[key] = value
        env["PATH"] = f"{self.venv / 'bin'}:/usr/bin:/bin"
        return env


def emulate(root: Path, dockerfile: Dockerfile | None = None) -> Image:
    """Lay the image out under root and run its install commands; raises on any failure."""
    import time

    dockerfile = dockerfile or Dockerfile.read()
    patterns = ignore_patterns()
    for sources, destination, workdir in dockerfile.copies():
        target = root / str(PurePosixPath(workdir) / destination).lstrip("/")
        for source in sources:
            src = source.rstrip("/")
            files = context_files(src, patterns)
            if not files:
                raise FileNotFoundError(f"COPY {source}: nothing in the build context")
            for relative in files:
                if (PROJECT_ROOT / src).is_dir():  # its contents go into the destination
                    copy_to = target / Path(relative).relative_to(src)
                elif destination.endswith("/") or len(sources) > 1:
                    copy_to = target / Path(src).name
                else:
                    copy_to = target
                copy_to.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(PROJECT_ROOT / relative, copy_to)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    image = Image(root=root, venv=venv, dockerfile=dockerfile)
    env_so_far: dict[str, str] = {}
    log = []
    started = time.monotonic()
    for instruction in dockerfile.instructions:
        if instruction.keyword == "ENV":
            env_so_far.update(Dockerfile([instruction]).env())
        if instruction.keyword != "RUN":
            continue
        for part in instruction.arguments.split("&&"):
            words = shlex.split(part)
            if words[0] in RUN_NOT_HERE:
                continue
            if words[0] not in RUN_HERE:
                raise ValueError(f"RUN {part.strip()}: a command the emulation does not know")
            workdir = _workdir_before(dockerfile, instruction)
            done = subprocess.run(
                part,
                shell=True,
                cwd=root / workdir.lstrip("/"),
                env={**os.environ, **env_so_far, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"},
                capture_output=True,
                text=True,
                timeout=300,
            )
            log.append(f"$ {part.strip()}\n{done.stdout}{done.stderr}")
            if done.returncode != 0:
                raise RuntimeError(f"RUN {part.strip()} failed:\n{log[-1][-3000:]}")
    image.install_s = time.monotonic() - started
    image.install_log = "\n".join(log)
    image.env = dockerfile.env()
    return image


def _workdir_before(dockerfile: Dockerfile, target: Instruction) -> str:
    workdir = "/"
    for instruction in dockerfile.instructions:
        if instruction is target:
            return workdir
        if instruction.keyword == "WORKDIR":
            workdir = str(PurePosixPath(workdir) / instruction.arguments)
    raise ValueError("instruction not in this Dockerfile")


@functools.cache
def shared_image() -> Image:
    """The image emulated once per test process (about 20 s: a virtual environment and the
    install), for every test that runs its entrypoint; removed when the process ends."""
    root = Path(tempfile.mkdtemp(prefix="memsweep-image-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return emulate(root)
