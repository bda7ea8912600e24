"""deploy/kubernetes without a cluster: rendered, validated, and its pods run as processes.

The base and every overlay are rendered by tests/kustomize.py (kustomize's semantics for the
features the manifests use; beside `kubectl kustomize` where one is installed), each object is
validated strictly against Kubernetes' schemas (kubernetes-validate) and the files are linted
(yamllint). Then the example overlay's pods run here as the Jobs would run them: each
container's command, arguments and environment are read from the rendered objects (never
retyped), the image is tests/image.py's emulation of the Dockerfile, the ConfigMap's scenario is
written where the pod would mount it, and only `memsweep-master` is mapped to 127.0.0.1 (a
private /etc/hosts in a mount namespace). The scenario is the one thing changed: a short run
against the local stack's URL, as a user's overlay would say.
"""

from __future__ import annotations

import copy
import math
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from runner import __version__
from runner.results import read_results
from runner.stack import PROJECT_ROOT
from runner.targets import LocalStackProcess
from tests import kustomize
from tests.conftest import StartStack, moto_server_endpoint, stack_args
from tests.image import Dockerfile, Image, shared_image
from tests.test_local_stack import wait_until

DEPLOY = PROJECT_ROOT / "deploy" / "kubernetes"
BASE = DEPLOY / "base"
EXAMPLE = DEPLOY / "overlays" / "example"
OVERLAYS = sorted(p for p in (DEPLOY / "overlays").iterdir() if (p / "kustomization.yaml").exists())
# The oldest Kubernetes the manifests claim (Job podFailurePolicy-era fields, all GA by 1.31)
# and the newest kubernetes-validate ships schemas for.
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")
MASTER_PORT = 5557
EXPECTED_KINDS = [
    *("ServiceAccount", "ConfigMap", "ConfigMap", "Service"),
    *("Job", "Job", "NetworkPolicy", "NetworkPolicy"),
]
API_KEY = "kubernetes-e2e-key-0123456789abcdef"
# tests/README.md's fault matrix: a worker quits 15 s after its master goes silent; one told to
# quit by the master ends at once. The bound for every worker after the master's end.
WORKERS_GONE_S = 20.0

YAMLLINT = """\
extends: default
rules:
  line-length: {max: 100}
  document-start: disable
  truthy: {allowed-values: ["true", "false"], check-keys: false}
"""


def kind(objects: list[kustomize.Object], wanted: str, name: str) -> kustomize.Object:
    found = [o for o in objects if o["kind"] == wanted and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{wanted}/{name}: {len(found)} found"
    return found[0]


def container(job: kustomize.Object) -> kustomize.Object:
    containers = job["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    found: kustomize.Object = containers[0]
    return found


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[kustomize.Object]]:
    return {str(path.relative_to(DEPLOY)): kustomize.render(path) for path in [BASE, *OVERLAYS]}


# --- the renderer against kustomize's documented behaviour ---------------------------------


def test_given_config_maps_then_the_hash_suffix_is_the_one_kustomize_5_5_prints() -> None:
    # Printed by `kubectl kustomize` (kustomize v5.5.0) for a configMapGenerator with these data.
    assert kustomize.config_map_hash({"a": "b"}) == "4h2mbtbbt6"
    assert kustomize.config_map_hash({"upload": "s3://bucket/prefix"}) == "k59g9k7575"
    assert kustomize.config_map_hash({"scenario.yaml": "name: x\n"}) == "77cdmfhhd9"
    # Go's JSON escapes <, > and & and writes non-ASCII as it is.
    text = 'name: "<a & b>" \nx: é\n'
    assert kustomize.config_map_hash({"scenario.yaml": text}) == "722dh275b2"


def overlay(tmp_path: Path, kustomization: str, files: dict[str, str]) -> Path:
    base = tmp_path / "base"
    base.mkdir()
    (base / "kustomization.yaml").write_text(
        "resources: [jobs.yaml]\nconfigMapGenerator:\n  - name: settings\n"
        "    literals: [a=1, b=2]\n"
    )
    (base / "jobs.yaml").write_text(
        """\
apiVersion: batch/v1
kind: Job
metadata: {name: w}
spec:
  parallelism: 1
  completions: 1
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: c
          image: registry.example:5000/tool:1
          args: [go, --n, "1", --n=1]
          env:
            - name: A
              valueFrom: {configMapKeyRef: {name: settings, key: a}}
      volumes:
        - name: s
          configMap: {name: settings}
"""
    )
    top = tmp_path / "overlay"
    top.mkdir()
    (top / "kustomization.yaml").write_text(kustomization)
    for name, text in files.items():
        (top / name).write_text(text)
    return top


def test_given_an_overlay_then_generators_patches_replacements_namespace_and_images_compose(
    tmp_path: Path,
) -> None:
    top = overlay(
        tmp_path,
        """\
namespace: ns
resources: [../base]
images:
  - {name: registry.example:5000/tool, newName: mine/tool, newTag: "2"}
configMapGenerator:
  - {name: settings, behavior: merge, literals: [b=3]}
patches:
  - target: {kind: Job, name: w}
    patch: |-
      - {op: replace, path: /spec/parallelism, value: 4}
replacements:
  - source: {kind: Job, name: w, fieldPath: spec.parallelism}
    targets:
      - select: {kind: Job, name: w}
        fieldPaths: [spec.completions, "spec.template.spec.containers.[name=c].args.2"]
      - select: {kind: Job, name: w}
        fieldPaths: ["spec.template.spec.containers.[name=c].args.3"]
        options: {delimiter: "=", index: 1}
""",
        {},
    )
    objects = kustomize.render(top)
    settings = next(o for o in objects if o["kind"] == "ConfigMap")
    job = kind(objects, "Job", "w")
    # merge keeps the base's keys and adds the overlay's; the name's suffix is the final data's.
    assert settings["data"] == {"a": "1", "b": "3"}
    suffixed = f"settings-{kustomize.config_map_hash({'a': '1', 'b': '3'})}"
    assert settings["metadata"] == {"name": suffixed, "namespace": "ns"}
    pod = job["spec"]["template"]["spec"]
    assert pod["volumes"][0]["configMap"]["name"] == suffixed
    assert pod["containers"][0]["env"][0]["valueFrom"]["configMapKeyRef"]["name"] == suffixed
    # The patch runs before the replacements; a string target stays a string.
    assert (job["spec"]["parallelism"], job["spec"]["completions"]) == (4, 4)
    assert pod["containers"][0]["args"] == ["go", "--n", "4", "--n=4"]
    assert pod["containers"][0]["image"] == "mine/tool:2"
    assert job["metadata"]["namespace"] == "ns"


def test_given_a_feature_it_does_not_model_then_the_renderer_refuses_it(tmp_path: Path) -> None:
    top = overlay(tmp_path, "resources: [../base]\ncommonLabels: {a: b}\n", {})
    with pytest.raises(kustomize.Unsupported, match="commonLabels"):
        kustomize.render(top)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl on PATH")
def test_given_kubectl_then_it_renders_exactly_what_the_renderer_renders(
    rendered: dict[str, list[kustomize.Object]],
) -> None:
    for name, objects in rendered.items():
        done = subprocess.run(
            ["kubectl", "kustomize", str(DEPLOY / name)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert [o for o in yaml.safe_load_all(done.stdout) if o] == objects, name


# --- the manifests -------------------------------------------------------------------------


def test_given_the_base_and_every_overlay_then_every_object_validates_strictly(
    rendered: dict[str, list[kustomize.Object]],
) -> None:
    assert {"base", "overlays/example"} <= set(rendered)
    for name, objects in rendered.items():
        for obj in objects:
            for version in KUBERNETES_VERSIONS:
                # Raises ValidationError naming the field.
                kubernetes_validate.validate(obj, version, strict=True)
        kinds = sorted(o["kind"] for o in objects)
        assert kinds == sorted(EXPECTED_KINDS), name


def test_given_a_misspelt_field_then_strict_validation_refuses_it(
    rendered: dict[str, list[kustomize.Object]],
) -> None:
    job = copy.deepcopy(kind(rendered["base"], "Job", "memsweep-master"))
    job["spec"]["backofLimit"] = 0
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES_VERSIONS[-1], strict=True)


def test_given_the_manifest_files_then_yamllint_finds_nothing() -> None:
    config = YamlLintConfig(YAMLLINT)
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert len(files) >= 9
    problems = [
        f"{path.relative_to(PROJECT_ROOT)}:{problem.line}: {problem.desc} ({problem.rule})"
        for path in files
        for problem in linter.run(path.read_text(), config)
    ]
    assert problems == []


def test_given_the_example_overlay_then_the_workers_number_is_said_once(tmp_path: Path) -> None:
    """The user edits one number; completions and --expect-workers follow it."""
    copied = tmp_path / "kubernetes"
    shutil.copytree(DEPLOY, copied)
    kustomization = copied / "overlays" / "example" / "kustomization.yaml"
    text = kustomization.read_text()
    assert text.count("value: 3") == 1
    kustomization.write_text(text.replace("value: 3", "value: 7"))
    for objects, count in (
        (kustomize.render(EXAMPLE), 3),
        (kustomize.render(copied / "overlays" / "example"), 7),
    ):
        workers = kind(objects, "Job", "memsweep-worker")["spec"]
        args = container(kind(objects, "Job", "memsweep-master"))["args"]
        expect = args[args.index("--expect-workers") + 1]
        assert (workers["parallelism"], workers["completions"], expect) == (
            count,
            count,
            str(count),
        )
        assert args[args.index("--workers") + 1] == "0"  # the worker Job's pods are the load


def test_given_the_network_policy_then_only_worker_pods_reach_the_master_port(
    rendered: dict[str, list[kustomize.Object]],
) -> None:
    for name, objects in rendered.items():
        master = kind(objects, "Job", "memsweep-master")
        worker = kind(objects, "Job", "memsweep-worker")
        master_pod = master["spec"]["template"]["metadata"]["labels"]
        worker_pod = worker["spec"]["template"]["metadata"]["labels"]
        args = container(master)["args"]
        port = int(args[args.index("--master-port") + 1])
        assert port == MASTER_PORT
        assert args[args.index("--master-bind-host") + 1] == "0.0.0.0"
        worker_args = container(worker)["args"]
        assert worker_args[worker_args.index("--master-port") + 1] == str(port)

        policy = kind(objects, "NetworkPolicy", "memsweep-master")["spec"]
        target = policy["podSelector"]["matchLabels"]
        assert selects(target, master_pod) and not selects(target, worker_pod), name
        assert policy["policyTypes"] == ["Ingress"]
        (rule,) = policy["ingress"]
        (peer,) = rule["from"]
        assert set(peer) == {"podSelector"}, "no namespaceSelector or ipBlock: this run's pods"
        source = peer["podSelector"]["matchLabels"]
        assert selects(source, worker_pod) and not selects(source, master_pod), name
        assert rule["ports"] == [{"protocol": "TCP", "port": port}]
        # Workers listen on nothing: no ingress at all.
        closed = kind(objects, "NetworkPolicy", "memsweep-worker")["spec"]
        assert selects(closed["podSelector"]["matchLabels"], worker_pod)
        assert not selects(closed["podSelector"]["matchLabels"], master_pod)
        assert (closed["policyTypes"], closed["ingress"]) == (["Ingress"], [])

        service = kind(objects, "Service", "memsweep-master")["spec"]
        assert service["clusterIP"] == "None" and service["publishNotReadyAddresses"] is True
        assert selects(service["selector"], master_pod)
        assert not selects(service["selector"], worker_pod)
        assert [(p["port"], p["targetPort"]) for p in service["ports"]] == [(port, port)]
        assert worker_args[worker_args.index("--master-host") + 1] == "memsweep-master"


def test_given_the_pods_then_non_root_read_only_no_capabilities_and_sized_to_one_core(
    rendered: dict[str, list[kustomize.Object]],
) -> None:
    user = Dockerfile.read().one("USER").arguments
    for objects in rendered.values():
        for job_name in ("memsweep-master", "memsweep-worker"):
            job = kind(objects, "Job", job_name)
            pod = job["spec"]["template"]["spec"]
            (box,) = pod["containers"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            context = pod["securityContext"]
            assert f"{context['runAsUser']}:{context['runAsGroup']}" == user
            assert box["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }
            assert "command" not in box  # the image's entrypoint: memsweep
            assert pod["restartPolicy"] == "Never"
            assert job["spec"]["backoffLimit"] == 0
            assert job["spec"]["ttlSecondsAfterFinished"] > 0
            # Guaranteed QoS, one core: the sizing rule (base/kustomization.yaml).
            assert box["resources"]["requests"] == box["resources"]["limits"]
            assert box["resources"]["requests"]["cpu"] == "1"
            writable = {m["mountPath"] for m in box["volumeMounts"] if not m.get("readOnly")}
            volumes = {v["name"]: v for v in pod["volumes"]}
            assert all(
                "emptyDir" in volumes[m["name"]]
                for m in box["volumeMounts"]
                if m["mountPath"] in writable
            )
            assert "/tmp" in writable
        master = container(kind(objects, "Job", "memsweep-master"))
        out = master["args"][master["args"].index("--out") + 1]
        assert out in {m["mountPath"] for m in master["volumeMounts"]}


def test_given_the_example_overlay_then_its_image_is_this_version_and_the_role_is_irsa(
    rendered: dict[str, list[kustomize.Object]],
) -> None:
    objects = rendered["overlays/example"]
    for job in ("memsweep-master", "memsweep-worker"):
        assert container(kind(objects, "Job", job))["image"].endswith(f"/memsweep:{__version__}")
    account = kind(objects, "ServiceAccount", "memsweep")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith(
        "arn:aws:iam::"
    )
    master = kind(objects, "Job", "memsweep-master")["spec"]["template"]["spec"]
    assert master["serviceAccountName"] == "memsweep"
    worker = kind(objects, "Job", "memsweep-worker")["spec"]["template"]["spec"]
    assert worker["automountServiceAccountToken"] is False
    assert "env" not in container(kind(objects, "Job", "memsweep-worker"))  # no credentials
    # The policy the role needs is the README's, named where the role is.
    policy_section = "What a sweep's credentials need"
    assert policy_section in (PROJECT_ROOT / "README.md").read_text()
    assert policy_section in (BASE / "serviceaccount.yaml").read_text()


# --- the pods, run as processes ------------------------------------------------------------


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) in command and args: defined ones replaced, $$ escapes a $."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", one, text)


@dataclass
class Pod:
    """One Job's pod as a local process: its argv, environment and mounts, from the objects."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log: Path
    memory_limit_kb: int
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ended_at: float | None = None
    peak_kb: int = 0  # the process's resident high-water mark, as last sampled

    def start(self) -> None:
        self.started_at = time.monotonic()
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def ended(self) -> bool:
        assert self.process is not None
        if self.ended_at is None:
            self.sample()
        if self.process.poll() is not None and self.ended_at is None:
            self.ended_at = time.monotonic()
        return self.ended_at is not None

    def sample(self) -> None:
        """VmHWM: the most memory the process has held (its container's limit applies)."""
        assert self.process is not None
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return
        found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        if found:
            self.peak_kb = max(self.peak_kb, int(found.group(1)))

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@dataclass
class Cluster:
    """What a cluster would give the pods: the rendered objects, Secrets, an image, a host name."""

    objects: list[kustomize.Object]
    image: Image
    secrets: dict[str, dict[str, str]]
    directory: Path
    hosts: Path | None  # a private /etc/hosts (root), else the name is substituted
    # Test-only additions to every pod's environment (where AWS is: the moto server).
    extra_env: dict[str, str] = field(default_factory=dict)
    pods: list[Pod] = field(default_factory=list)

    def pod(self, job_name: str, index: int = 0) -> Pod:
        job = kind(self.objects, "Job", job_name)
        spec = job["spec"]["template"]["spec"]
        (box,) = spec["containers"]
        root = self.directory / f"{job_name}-{index}"
        mounts: dict[str, Path] = {}
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for mount in box.get("volumeMounts", []):
            local = root / "mounts" / mount["mountPath"].strip("/").replace("/", "_")
            volume = volumes[mount["name"]]
            if "configMap" in volume:
                self.project_config_map(volume["configMap"]["name"], local)
            elif "emptyDir" in volume:
                local.mkdir(parents=True)
            else:
                raise AssertionError(f"volume {volume} is not modelled")
            mounts[mount["mountPath"]] = local
        workdir = self.image.dockerfile.final_workdir()
        mounts.setdefault(workdir, root / "workdir")
        mounts[workdir].mkdir(parents=True, exist_ok=True)

        def mapped(value: str) -> str:
            for inside in sorted(mounts, key=len, reverse=True):
                if value == inside or value.startswith(inside.rstrip("/") + "/"):
                    return str(mounts[inside]) + value[len(inside) :]
            return value

        env: dict[str, str] = {k: mapped(v) for k, v in self.image.env.items()}
        for variable in box.get("env", []):
            value = self.env_value(variable, env)
            if value is not None:
                env[variable["name"]] = mapped(value)
        command = box.get("command") or self.image.dockerfile.one("ENTRYPOINT").words()
        args = box.get("args") or self.image.dockerfile.one("CMD").words()
        argv = [mapped(expand(word, env)) for word in [*command, *args]]
        if self.hosts is None:
            argv = ["127.0.0.1" if word == "memsweep-master" else word for word in argv]
        else:
            argv = [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                'mount --bind "$0" /etc/hosts && exec "$@"',
                str(self.hosts),
                *argv,
            ]
        # Test-only: AWS is the moto server, and nothing dials the EC2 metadata address.
        env.update(self.extra_env, AWS_EC2_METADATA_DISABLED="true")
        pod = Pod(
            memory_limit_kb=kibibytes(box["resources"]["limits"]["memory"]),
            name=f"{job_name}-{index}",
            argv=argv,
            env=self.image.process_env(env),
            cwd=mounts[workdir],
            log=self.directory / f"{job_name}-{index}.log",
        )
        self.pods.append(pod)
        return pod

    def project_config_map(self, name: str, directory: Path) -> None:
        """The kubelet's layout of a ConfigMap volume: keys are links into ..data."""
        data = kind(self.objects, "ConfigMap", name)["data"]
        version = directory / "..2026_01_01_00_00_00.000000001"
        version.mkdir(parents=True)
        (directory / "..data").symlink_to(version.name)
        for key, text in data.items():
            (version / key).write_text(text)
            (directory / key).symlink_to(f"..data/{key}")

    def env_value(self, variable: dict[str, Any], env: dict[str, str]) -> str | None:
        if "value" in variable:
            return expand(variable["value"], env)
        source = variable["valueFrom"]
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            data = kind(self.objects, "ConfigMap", ref["name"])["data"]
        else:
            ref = source["secretKeyRef"]
            data = self.secrets.get(ref["name"], {})
        if ref["key"] not in data:
            # The kubelet refuses to start a container whose required key is missing.
            assert ref.get("optional"), f"{variable['name']}: {ref} is missing"
            return None
        value: str = data[ref["key"]]
        return value


E2E_SCENARIO = """\
# The example overlay's scenario, replaced as a user would: a short run against a URL.
name: kubernetes pods on loopback
target: {{kind: url, url: "{url}"}}
sweep: {{memory_mb: [128, 1024], warmup_s: 1}}
load:
  stages: [{{users: 6, duration_s: {duration}}}]
  think_time: {{min_s: 0.02, max_s: 0.06}}
requests:
  - name: create
    weight: 2
    body: {{operation: create, payload: {{Item: {{id: "{{{{uuid}}}}", n: "{{{{int:1:9}}}}"}}}}}}
  - name: read
    body: {{operation: read, payload: {{Key: {{id: "{{{{seeded}}}}"}}}}}}
seed: {{items: 5}}
thresholds: {{p95_ms: {p95}}}
workers: {{wait_s: 60}}
"""


@pytest.fixture(scope="module")
def image() -> Image:
    return shared_image()


@dataclass
class S3:
    endpoint: str
    bucket: str
    prefix: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def keys(self, run_id: str) -> set[str]:
        folder = f"{self.prefix}/{run_id}/"
        listed = self.client().list_objects_v2(Bucket=self.bucket, Prefix=folder)
        return {item["Key"].removeprefix(folder) for item in listed.get("Contents", [])}


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    """A moto server holding the bucket the example overlay uploads to (read from its
    ConfigMap, not retyped). moto's state is the session's: only this bucket is touched."""
    objects = kustomize.render(EXAMPLE)
    (variable,) = [
        v
        for v in container(kind(objects, "Job", "memsweep-master"))["env"]
        if v["name"] == "MEMSWEEP_UPLOAD"
    ]
    ref = variable["valueFrom"]["configMapKeyRef"]
    upload = kind(objects, "ConfigMap", ref["name"])["data"][ref["key"]]
    bucket, _, prefix = upload.removeprefix("s3://").partition("/")
    with moto_server_endpoint(reset=False) as endpoint:
        store = S3(endpoint, bucket, prefix)
        store.client().create_bucket(Bucket=bucket)
        yield store


@pytest.fixture(scope="module")
def stack(start_module_stack: StartStack) -> LocalStackProcess:
    return start_module_stack(*stack_args(memory_mb=1024), "--api-key", API_KEY)


def cluster_for(
    tmp_path: Path,
    image: Image,
    stack: LocalStackProcess,
    s3: S3,
    *,
    p95_ms: float = 5000,
    duration_s: float = 4,
    mistake: str = "",
) -> Cluster:
    """The example overlay with its scenario replaced (the file a user edits), rendered."""
    copied = tmp_path / "kubernetes"
    shutil.copytree(DEPLOY, copied)
    scenario = E2E_SCENARIO.format(url=stack.url, p95=p95_ms, duration=duration_s) + mistake
    (copied / "overlays" / "example" / "scenario.yaml").write_text(scenario)
    objects = kustomize.render(copied / "overlays" / "example")
    hosts = None
    if os.geteuid() == 0 and shutil.which("unshare"):
        hosts = tmp_path / "hosts"
        hosts.write_text("127.0.0.1 localhost\n127.0.0.1 memsweep-master\n")
    pods = tmp_path / "pods"
    pods.mkdir()
    return Cluster(
        objects=objects,
        image=image,
        # As `kubectl create secret generic memsweep-credentials --from-literal=api-key=...`,
        # with keys the moto server takes (a cluster without IAM roles for pods).
        secrets={
            "memsweep-credentials": {
                "api-key": API_KEY,
                "aws-access-key-id": "testing",
                "aws-secret-access-key": "testing",
            }
        },
        directory=pods,
        hosts=hosts,
        extra_env={"AWS_ENDPOINT_URL": s3.endpoint},
    )


@pytest.fixture
def cleanup() -> Iterator[list[Cluster]]:
    clusters: list[Cluster] = []
    yield clusters
    for cluster in clusters:
        for pod in cluster.pods:
            pod.kill()


def kibibytes(quantity: str) -> int:
    units = {"Ki": 1, "Mi": 1024, "Gi": 1024**2}
    return int(quantity[:-2]) * units[quantity[-2:]]


def run_until_master_ends(cluster: Cluster, master: Pod, timeout: float = 120) -> int:
    """The master's exit code, every pod's memory sampled meanwhile."""
    deadline = time.monotonic() + timeout
    while not master.ended():
        assert time.monotonic() < deadline, logs(cluster)
        for pod in cluster.pods:
            pod.ended()
        time.sleep(0.1)
    assert master.process is not None
    return master.process.returncode


def logs(cluster: Cluster) -> str:
    return "\n".join(f"--- {p.name}\n{p.log.read_text()[-3000:]}" for p in cluster.pods)


def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if not path.is_dir()}


def run_directory(cluster: Cluster) -> Path:
    (results,) = cluster.directory.glob("memsweep-master-0/mounts/*/*/results.json")
    return results.parent


def uploaded_whole(s3: S3, run_dir: Path) -> bool:
    local = {p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file()}
    return len(local) > 5 and s3.keys(run_dir.name) == local


def test_given_the_example_pods_then_the_master_exits_with_the_run_and_every_worker_ends(
    tmp_path: Path, image: Image, stack: LocalStackProcess, s3: S3, cleanup: list[Cluster]
) -> None:
    cluster = cluster_for(tmp_path, image, stack, s3, p95_ms=5000)
    cleanup.append(cluster)
    count = kind(cluster.objects, "Job", "memsweep-worker")["spec"]["parallelism"]
    assert count == 3
    image_files = files_under(image.root)
    workers = [cluster.pod("memsweep-worker", i) for i in range(count)]
    master = cluster.pod("memsweep-master")
    # Pods start in any order: one worker before the master has an address.
    workers[0].start()
    time.sleep(2)
    assert workers[0].process is not None and workers[0].process.poll() is None, logs(cluster)
    master.start()
    for worker in workers[1:]:
        worker.start()
    code = run_until_master_ends(cluster, master)
    assert code == 0, logs(cluster)  # the Job: Complete
    results = read_results(run_directory(cluster) / "results.json")
    assert results.status == "complete" and results.exit_code == 0
    assert [step.memory_mb for step in results.steps] == [128, 1024]
    for step in results.steps:
        assert step.valid, step.problems
        assert len(step.workers) == count and all(w.requests > 0 for w in step.workers)
    assert (run_directory(cluster) / "report.html").stat().st_size > 100_000  # Chart.js inlined
    # What `aws s3 cp --recursive s3://bucket/prefix/<run-id>/ ./run` fetches: every file.
    assert uploaded_whole(s3, run_directory(cluster)), logs(cluster)
    # The worker Job completes by itself: every worker gone soon after the master, exit 0.
    assert wait_until(lambda: all(w.ended() for w in workers), WORKERS_GONE_S), logs(cluster)
    assert master.ended_at is not None
    assert all(
        w.ended_at is not None and w.ended_at - master.ended_at <= WORKERS_GONE_S for w in workers
    )
    assert [w.process.returncode for w in workers if w.process] == [0] * count, logs(cluster)
    # readOnlyRootFilesystem holds: nothing written outside the pods' emptyDirs (not into the
    # image, not into the working directory).
    assert files_under(image.root) == image_files
    assert all(not any((cluster.directory / p.name / "workdir").iterdir()) for p in cluster.pods)
    # Within the pods' memory limits, with room (the limit is 2x or more what was used here).
    print("PEAKS", [(p.name, p.peak_kb) for p in cluster.pods])
    for pod in cluster.pods:
        assert 0 < pod.peak_kb * 2 <= pod.memory_limit_kb, (pod.name, pod.peak_kb)


def test_given_thresholds_no_size_meets_then_the_master_exits_1_and_workers_still_end(
    tmp_path: Path, image: Image, stack: LocalStackProcess, s3: S3, cleanup: list[Cluster]
) -> None:
    cluster = cluster_for(tmp_path, image, stack, s3, p95_ms=0.001)
    cleanup.append(cluster)
    count = kind(cluster.objects, "Job", "memsweep-worker")["spec"]["parallelism"]
    master = cluster.pod("memsweep-master")
    workers = [cluster.pod("memsweep-worker", i) for i in range(count)]
    for pod in [master, *workers]:
        pod.start()
    code = run_until_master_ends(cluster, master)
    assert code == 1, logs(cluster)  # the Job: Failed, and the exit code says why
    assert read_results(run_directory(cluster) / "results.json").exit_code == 1
    assert uploaded_whole(s3, run_directory(cluster)), logs(cluster)  # a failed run's too
    assert wait_until(lambda: all(w.ended() for w in workers), WORKERS_GONE_S), logs(cluster)
    assert [w.process.returncode for w in workers if w.process] == [0] * count


def test_given_the_sizing_rule_then_the_manifests_and_readme_state_one_figure() -> None:
    base = (BASE / "kustomization.yaml").read_text()
    per_worker = re.search(r"Plan ([\d,]+) req/s per worker", base)
    assert per_worker, "the sizing rule's figure"
    figure = per_worker.group(1)
    assert f"{figure} req/s" in (PROJECT_ROOT / "README.md").read_text()
    assert f"one worker per {figure} req/s" in (EXAMPLE / "kustomization.yaml").read_text()
    # 3 workers in the example: ceil(its scenario's rate / the figure).
    rate = yaml.safe_load((EXAMPLE / "scenario.yaml").read_text())["load"]["rate_per_s"]
    assert math.ceil(rate / int(figure.replace(",", ""))) == 3


def test_given_a_worker_pod_lost_mid_run_then_the_master_exits_3_naming_it_and_the_rest_end(
    tmp_path: Path, image: Image, stack: LocalStackProcess, s3: S3, cleanup: list[Cluster]
) -> None:
    """A worker pod killed (evicted, its node gone): the run fails (exit 3, the Job Failed),
    results.json names the worker, the report still reaches S3 and the other pods end."""
    cluster = cluster_for(tmp_path, image, stack, s3, duration_s=20)
    cleanup.append(cluster)
    count = kind(cluster.objects, "Job", "memsweep-worker")["spec"]["parallelism"]
    master = cluster.pod("memsweep-master")
    workers = [cluster.pod("memsweep-worker", i) for i in range(count)]
    for pod in [master, *workers]:
        pod.start()
    assert wait_until(lambda: "load running" in master.log.read_text(), 60), logs(cluster)
    time.sleep(2)
    workers[0].kill()
    code = run_until_master_ends(cluster, master)
    assert code == 3, logs(cluster)
    results = read_results(run_directory(cluster) / "results.json")
    assert results.exit_code == 3
    assert sum(w.lost for step in results.steps for w in step.workers) == 1
    assert uploaded_whole(s3, run_directory(cluster)), logs(cluster)
    others = workers[1:]
    assert wait_until(lambda: all(w.ended() for w in others), WORKERS_GONE_S), logs(cluster)


def test_given_a_scenario_with_a_mistake_then_the_master_exits_2_at_once(
    tmp_path: Path, image: Image, stack: LocalStackProcess, s3: S3, cleanup: list[Cluster]
) -> None:
    """Bad input fails the master's Job before anything starts, in one line naming the key."""
    cluster = cluster_for(tmp_path, image, stack, s3, mistake="sweeps: {}\n")
    cleanup.append(cluster)
    master = cluster.pod("memsweep-master")
    master.start()
    code = run_until_master_ends(cluster, master, timeout=30)
    assert code == 2, logs(cluster)
    assert "sweeps: unknown key" in master.log.read_text(), logs(cluster)
