"""The edge runtime as a cloud endpoint: deploy/kubernetes/edge-runtime.yaml checked
against the Kubernetes API schema (the ``kubernetes`` client's models; no cluster), its
pieces checked against each other and against the edge runtime's own command line, and
deploy/edge/Dockerfile checked against what the edge runtime imports."""

from __future__ import annotations

import ast
import copy
import re
import sys
from typing import Any

import pytest
import yaml

from edge_runtime.__main__ import build_parser
from stacks.spec import expand
from tests.conftest import REPO_ROOT
from tests.stacks.k8s_schema import SchemaError, validate

MANIFEST = REPO_ROOT / "deploy" / "kubernetes" / "edge-runtime.yaml"
DOCKERFILE = REPO_ROOT / "deploy" / "edge" / "Dockerfile"
REQUIREMENTS = REPO_ROOT / "deploy" / "edge" / "requirements.txt"
EXAMPLE_BUCKET = "my-visionloop-bucket"  # the bucket the manifest names in its example


def documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]


def by_kind() -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in documents()}


def test_every_document_matches_the_kubernetes_schema() -> None:
    kinds = [type(validate(doc, f"{MANIFEST.name}[{i}]")).__name__ for i, doc in enumerate(documents())]
    assert {"V1Deployment", "V1Service", "V2HorizontalPodAutoscaler"} <= set(kinds)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda d: d["spec"]["template"]["spec"]["containers"][0].update(imagePullPolicyy="Always"),
            "did you mean imagePullPolicy",
        ),
        (lambda d: d["spec"].update(replicas="two"), "expected an integer"),
        (lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name"), "name"),
        (
            lambda d: d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"].update(
                paht="/"
            ),
            "did you mean path",
        ),
    ],
    ids=["typo", "wrong-type", "missing-required", "nested-typo"],
)
def test_a_broken_deployment_is_refused(mutate: Any, message: str) -> None:
    doc = copy.deepcopy(by_kind()["Deployment"])
    mutate(doc)
    with pytest.raises(SchemaError, match=message):
        validate(doc, "deployment")


def test_service_and_autoscaler_point_at_the_deployment() -> None:
    kinds = by_kind()
    deployment, service, hpa = kinds["Deployment"], kinds["Service"], kinds["HorizontalPodAutoscaler"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["type"] == "LoadBalancer"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    port_names = {p["name"] for p in container["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"] >= 2
    # the autoscaler scales on CPU utilisation, which needs a CPU request
    assert container["resources"]["requests"]["cpu"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"


def test_container_arguments_are_what_the_edge_runtime_accepts() -> None:
    deployment = by_kind()["Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"] for e in container["env"]}
    args = [re.sub(r"\$\((\w+)\)", lambda m: f"<{m.group(1)}>", a) for a in container["args"]]
    assert all(m in env for a in container["args"] for m in re.findall(r"\$\((\w+)\)", a))
    parsed = build_parser().parse_args(args)  # exits (SystemExit) on an unknown flag
    assert parsed.command == "serve" and parsed.host == "0.0.0.0"
    assert parsed.port == next(p["containerPort"] for p in container["ports"] if p["name"] == "http")
    assert "EDGE_RUNTIME_TOKEN" in env  # requests need the bearer token
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(parsed.state_dir) in mounts and str(parsed.public_key.parent) in mounts


def test_it_pulls_from_the_kubernetes_stacks_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISIONLOOP_BUCKET", EXAMPLE_BUCKET)
    stack = yaml.safe_load((REPO_ROOT / "stacks" / "kubernetes.yaml").read_text())
    channel = expand(stack["visionloop"]["channel"], "visionloop.channel", "kubernetes")
    container = by_kind()["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert build_parser().parse_args(container["args"]).channel == channel


def edge_imports() -> set[str]:
    """Top-level modules that edge_runtime/ imports, outside itself."""
    names: set[str] = set()
    for source in (REPO_ROOT / "edge_runtime").glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - {"edge_runtime"} - set(sys.stdlib_module_names)


def test_the_image_installs_what_the_edge_runtime_imports_and_nothing_heavier() -> None:
    required = {
        re.split(r"[<>=!\[ ]", line.strip(), maxsplit=1)[0].lower()
        for line in REQUIREMENTS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    import_names = {"pil": "pillow", "botocore": "boto3"}  # import name -> the package providing it
    imported = {import_names.get(n.lower(), n.lower()) for n in edge_imports()}
    assert imported <= required, f"edge_runtime imports {sorted(imported - required)}, not in {REQUIREMENTS}"
    assert not required & {"zenml", "torch", "ultralytics", "mlflow"}
    dockerfile = DOCKERFILE.read_text()
    copies = re.findall(r"^COPY\s+(\S+)\s+\S+", dockerfile, flags=re.M)
    assert set(copies) == {"deploy/edge/requirements.txt", "edge_runtime"}, copies
    assert re.search(r'^ENTRYPOINT \["python", "-m", "edge_runtime"\]', dockerfile, flags=re.M)
    assert re.search(r"^USER 10001", dockerfile, flags=re.M)
    pod = by_kind()["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 10001 and pod["securityContext"]["runAsNonRoot"]
