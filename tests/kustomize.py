"""A small kustomize: exactly the features deploy/kubernetes/ uses, with kustomize's semantics.

`kubectl kustomize` is not installable from the registries CI reaches, so the tests render the
manifests with this instead. It supports, and refuses anything beyond:

- `resources`: YAML files and directories holding a kustomization.yaml (built first);
- `configMapGenerator`: `files` (key = the file's name, or `key=path`) and `literals`
  (`key=value`), with `behavior` create / replace / merge against a base's generator; the
  name gets kustomize's content hash suffix, and references to it in pod templates follow;
- `patches`: inline JSON 6902 patches (add, replace, remove) with a `target` kind and name;
- `replacements`: a source field copied to target fields, with `options.delimiter`/`index`;
- `images`: `newName`, `newTag`, `digest`;
- `namespace`.

Order within one kustomization, as kustomize's: resources, generators, patches, namespace,
images, replacements; hash suffixes and the references to them once, for the whole build.
The hash is kustomize's (api/hasher): sha256 of Go's JSON of {"data", "kind", "name"} (the name
is read as "" there), its first 10 hex digits with 0, 1, 3, a, e spelt g, h, k, m, t; the tests
hold it to values kustomize v5.5.0 printed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Object = dict[str, Any]

KUSTOMIZATION_KEYS = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "images",
    "configMapGenerator",
    "patches",
    "replacements",
}
GENERATOR_KEYS = {"name", "files", "literals", "behavior"}
# Where a pod template names a ConfigMap (kustomize's nameReference for ConfigMap, the fields a
# Job's pod template has).
POD_SPEC_PATHS = {"Job": ("spec", "template", "spec")}


class Unsupported(ValueError):
    """A kustomization uses something this renderer does not model."""


@dataclass
class _Build:
    objects: list[Object] = field(default_factory=list)
    # Generated ConfigMaps by their name before the hash suffix.
    generated: dict[str, Object] = field(default_factory=dict)


def render(directory: Path) -> list[Object]:
    """The objects `kubectl kustomize directory` prints (in kustomize's order for these kinds)."""
    build = _build(directory.resolve())
    _suffix_generated(build)
    return sorted(build.objects, key=_order)


def _build(directory: Path) -> _Build:
    path = directory / "kustomization.yaml"
    spec = yaml.safe_load(path.read_text())
    unknown = set(spec) - KUSTOMIZATION_KEYS
    if unknown:
        raise Unsupported(f"{path}: {sorted(unknown)}")
    build = _Build()
    for entry in spec.get("resources", []):
        resource = (directory / entry).resolve()
        if resource.is_dir():
            base = _build(resource)
            build.objects += base.objects
            build.generated.update(base.generated)
        else:
            build.objects += [doc for doc in yaml.safe_load_all(resource.read_text()) if doc]
    for generator in spec.get("configMapGenerator", []):
        _generate(build, directory, generator)
    for patch in spec.get("patches", []):
        _patch(build.objects, patch)
    if "namespace" in spec:
        for obj in build.objects:
            obj["metadata"]["namespace"] = spec["namespace"]
    for image in spec.get("images", []):
        _set_image(build.objects, image)
    for replacement in spec.get("replacements", []):
        _replace(build.objects, replacement)
    return build


# -- configMapGenerator ---------------------------------------------------------------------


def _generate(build: _Build, directory: Path, generator: Object) -> None:
    unknown = set(generator) - GENERATOR_KEYS
    if unknown:
        raise Unsupported(f"configMapGenerator {generator.get('name')}: {sorted(unknown)}")
    name = generator["name"]
    data: dict[str, str] = {}
    for entry in generator.get("files", []):
        key, _, relative = entry.rpartition("=")
        file = directory / relative
        data[key or file.name] = file.read_text(encoding="utf-8")
    for literal in generator.get("literals", []):
        key, sep, value = literal.partition("=")
        if not sep or value[:1] in ("'", '"'):
            raise Unsupported(f"literal {literal!r}: only key=value, unquoted")
        data[key] = value
    behavior = generator.get("behavior", "create")
    existing = build.generated.get(name)
    if behavior == "create":
        if existing is not None:
            raise Unsupported(f"configMapGenerator {name}: exists already (use behavior)")
        made: Object = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
        made["data"] = data
        build.generated[name] = made
        build.objects.append(made)
    elif behavior in ("replace", "merge"):
        if existing is None:
            raise Unsupported(f"configMapGenerator {name}: behavior {behavior} with no base")
        existing["data"] = data if behavior == "replace" else {**existing["data"], **data}
    else:
        raise Unsupported(f"configMapGenerator {name}: behavior {behavior!r}")


def go_json(value: Any) -> str:
    """Go's json.Marshal of maps and strings: keys sorted, no spaces, <, >, & escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # Python writes \b and \f where Go writes \u0008 and \u000c (escapes read pairwise, so an
    # escaped backslash before a b stays as it is).
    text = _ESCAPE.sub(lambda m: _GO_ESCAPES.get(m.group(1), m.group(0)), text)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


_ESCAPE = re.compile(r"\\(u[0-9a-f]{4}|.)")
_GO_ESCAPES = {"b": "\\u0008", "f": "\\u000c"}


def config_map_hash(data: dict[str, str]) -> str:
    """kustomize's name suffix for a ConfigMap with this data."""
    digest = hashlib.sha256(
        go_json({"data": data, "kind": "ConfigMap", "name": ""}).encode()
    ).hexdigest()
    return digest[:10].translate(str.maketrans("013ae", "ghkmt"))


def _suffix_generated(build: _Build) -> None:
    renamed: dict[str, str] = {}
    for name, config_map in build.generated.items():
        renamed[name] = f"{name}-{config_map_hash(config_map['data'])}"
        config_map["metadata"]["name"] = renamed[name]
    for obj in build.objects:
        pod = _pod_spec(obj)
        if pod is None:
            continue
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                ref = volume["configMap"]
                ref["name"] = renamed.get(ref["name"], ref["name"])
            if "projected" in volume:
                raise Unsupported("projected volumes")
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("configMapKeyRef")
                if ref is not None:
                    ref["name"] = renamed.get(ref["name"], ref["name"])
            if "envFrom" in container:
                raise Unsupported("envFrom")


def _pod_spec(obj: Object) -> Object | None:
    path = POD_SPEC_PATHS.get(obj["kind"])
    if path is None:
        if obj["kind"] in ("Pod", "Deployment", "StatefulSet", "DaemonSet", "CronJob"):
            raise Unsupported(f"references from a {obj['kind']}")
        return None
    node: Object = obj
    for key in path:
        node = node[key]
    return node


# -- patches --------------------------------------------------------------------------------


def _select(objects: list[Object], target: Object) -> list[Object]:
    unknown = set(target) - {"kind", "name"}
    if unknown:
        raise Unsupported(f"selector keys {sorted(unknown)}")
    return [
        obj
        for obj in objects
        if obj["kind"] == target.get("kind", obj["kind"])
        and obj["metadata"]["name"] == target.get("name", obj["metadata"]["name"])
    ]


def _patch(objects: list[Object], patch: Object) -> None:
    if set(patch) != {"target", "patch"}:
        raise Unsupported(f"patch with {sorted(patch)}: only an inline patch with a target")
    operations = yaml.safe_load(patch["patch"])
    if not isinstance(operations, list):
        raise Unsupported("strategic merge patches: only JSON 6902 (a list of operations)")
    selected = _select(objects, patch["target"])
    if not selected:
        raise ValueError(f"patch target {patch['target']} matches nothing")
    for obj in selected:
        for operation in operations:
            _json_patch(obj, operation)


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _json_patch(obj: Object, operation: Object) -> None:
    *parents, last = _pointer(operation["path"])
    node: Any = obj
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    op = operation["op"]
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if op == "add":
            node.insert(index, copy.deepcopy(operation["value"]))
        elif op == "replace":
            node[index] = copy.deepcopy(operation["value"])
        elif op == "remove":
            del node[index]
        else:
            raise Unsupported(f"JSON patch op {op!r}")
        return
    if op == "add":
        node[last] = copy.deepcopy(operation["value"])
    elif op == "replace":
        if last not in node:
            raise ValueError(f"replace {operation['path']}: no such field")
        node[last] = copy.deepcopy(operation["value"])
    elif op == "remove":
        del node[last]
    else:
        raise Unsupported(f"JSON patch op {op!r}")


# -- images ---------------------------------------------------------------------------------


def _set_image(objects: list[Object], image: Object) -> None:
    unknown = set(image) - {"name", "newName", "newTag", "digest"}
    if unknown:
        raise Unsupported(f"images keys {sorted(unknown)}")
    for obj in objects:
        pod = _pod_spec(obj)
        for container in [] if pod is None else pod.get("containers", []):
            name, tag, digest = _split_image(container["image"])
            if name != image["name"]:
                continue
            name = image.get("newName", name)
            if "digest" in image:
                container["image"] = f"{name}@{image['digest']}"
            elif "newTag" in image:
                container["image"] = f"{name}:{image['newTag']}"
            else:
                container["image"] = name + (f"@{digest}" if digest else f":{tag}" if tag else "")


def _split_image(reference: str) -> tuple[str, str, str]:
    """name, tag, digest ('' where absent); a registry's port is not a tag."""
    name, _, digest = reference.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :], digest
    return name, "", digest


# -- replacements ---------------------------------------------------------------------------

_SEGMENT = re.compile(r"\[[^\]]*\]|[^.]+")


def field_path(path: str) -> list[str]:
    """kustomize's dotted field path: 'a.[name=x].b.0' -> ['a', '[name=x]', 'b', '0']."""
    return _SEGMENT.findall(path)


def _walk(obj: Object, path: str) -> tuple[Any, str | int]:
    """The parent of the field at `path` and the field's key or index (the field must exist)."""
    segments = field_path(path)
    node: Any = obj
    for position, segment in enumerate(segments):
        last = position == len(segments) - 1
        if segment.startswith("["):
            key, _, value = segment[1:-1].partition("=")
            matches = [item for item in node if isinstance(item, dict) and item.get(key) == value]
            if len(matches) != 1:
                raise ValueError(f"{path}: {segment} matches {len(matches)} items")
            if last:
                return node, node.index(matches[0])
            node = matches[0]
            continue
        key_or_index: str | int = int(segment) if isinstance(node, list) else segment
        if isinstance(node, list):
            assert isinstance(key_or_index, int)
            if not 0 <= key_or_index < len(node):
                raise ValueError(f"{path}: no item {segment}")
        elif segment not in node:
            raise ValueError(f"{path}: no field {segment!r} (kustomize needs options.create)")
        if last:
            return node, key_or_index
        node = node[key_or_index]
    raise ValueError(f"empty field path {path!r}")


def _replace(objects: list[Object], replacement: Object) -> None:
    source = dict(replacement["source"])
    source_path = source.pop("fieldPath")
    found = _select(objects, source)
    if len(found) != 1:
        raise ValueError(f"replacement source {replacement['source']} matches {len(found)}")
    parent, key = _walk(found[0], source_path)
    value = parent[key]
    for target in replacement["targets"]:
        unknown = set(target) - {"select", "fieldPaths", "options"}
        if unknown:
            raise Unsupported(f"replacement target keys {sorted(unknown)}")
        options = target.get("options", {})
        if set(options) - {"delimiter", "index"}:
            raise Unsupported(f"replacement options {sorted(options)}")
        for obj in _select(objects, target["select"]):
            for path in target["fieldPaths"]:
                parent, key = _walk(obj, path)
                parent[key] = _replaced(parent[key], value, options)


def _replaced(old: Any, value: Any, options: Object) -> Any:
    """The new value of a target: kustomize keeps a string target a string."""
    if "delimiter" in options:
        parts = str(old).split(options["delimiter"])
        index = options.get("index", 0)
        if 0 <= index < len(parts):
            parts[index] = str(value)
        return options["delimiter"].join(parts)
    if isinstance(old, str):
        return str(value)
    if type(old) is not type(value):
        raise Unsupported(f"replacing a {type(old).__name__} with a {type(value).__name__}")
    return value


# -- output ---------------------------------------------------------------------------------

# kustomize's default ("legacy") order: these kinds first, in this order; the rest after them
# by kind; then by name.
ORDER_FIRST = (
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
)


def _order(obj: Object) -> tuple[int, str, str]:
    kind = obj["kind"]
    rank = ORDER_FIRST.index(kind) if kind in ORDER_FIRST else len(ORDER_FIRST)
    return rank, kind if rank == len(ORDER_FIRST) else "", obj["metadata"]["name"]


def dump(objects: list[Object]) -> str:
    """The objects as one multi-document YAML stream."""
    return yaml.safe_dump_all(objects, sort_keys=True, default_flow_style=False)
