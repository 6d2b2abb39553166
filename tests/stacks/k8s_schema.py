"""Strict checking of Kubernetes manifests against the API schema that the
``kubernetes`` Python client carries (its generated models: field names, types and
required fields), with no cluster. The client's own deserializer ignores unknown keys;
here an unknown key is an error naming where it is and the closest known name."""

from __future__ import annotations

import difflib
from typing import Any

import kubernetes.client as k8s

KINDS = {
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "Service"): "V1Service",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2HorizontalPodAutoscaler",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("batch/v1", "CronJob"): "V1CronJob",
}


class SchemaError(ValueError):
    pass


def check(data: Any, type_name: str, where: str) -> None:
    if type_name.startswith("list["):
        if not isinstance(data, list):
            raise SchemaError(f"{where}: expected a list, got {type(data).__name__}")
        for i, item in enumerate(data):
            check(item, type_name[5:-1], f"{where}[{i}]")
    elif type_name.startswith("dict("):
        if not isinstance(data, dict):
            raise SchemaError(f"{where}: expected a mapping, got {type(data).__name__}")
        inner = type_name[5:-1].split(", ", 1)[1]
        for key, value in data.items():
            check(value, inner, f"{where}.{key}")
    elif type_name == "str":
        if not isinstance(data, str):
            raise SchemaError(f"{where}: expected a string, got {data!r}")
    elif type_name == "int":
        if not isinstance(data, int) or isinstance(data, bool):
            raise SchemaError(f"{where}: expected an integer, got {data!r}")
    elif type_name == "bool":
        if not isinstance(data, bool):
            raise SchemaError(f"{where}: expected true or false, got {data!r}")
    elif type_name == "float":
        if not isinstance(data, int | float) or isinstance(data, bool):
            raise SchemaError(f"{where}: expected a number, got {data!r}")
    elif type_name in ("object", "datetime"):
        return  # int-or-string, quantities, free-form
    else:
        model = getattr(k8s, type_name)
        if not isinstance(data, dict):
            raise SchemaError(f"{where}: expected a {type_name} mapping, got {type(data).__name__}")
        by_json = {json_name: attr for attr, json_name in model.attribute_map.items()}
        for key, value in data.items():
            if key not in by_json:
                close = difflib.get_close_matches(key, list(by_json), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise SchemaError(f"{where}.{key}: not a field of {type_name}{hint}")
            check(value, model.openapi_types[by_json[key]], f"{where}.{key}")


def validate(doc: dict[str, Any], where: str) -> Any:
    """Check one manifest document and build the client's model of it (which also
    enforces the required fields); returns the model."""
    model_name = KINDS.get((doc.get("apiVersion"), doc.get("kind")))
    if model_name is None:
        raise SchemaError(f"{where}: unknown apiVersion/kind {doc.get('apiVersion')}/{doc.get('kind')}")
    check(doc, model_name, f"{where}({doc['kind']})")
    try:
        return k8s.ApiClient()._ApiClient__deserialize(doc, model_name)  # type: ignore[attr-defined]
    except ValueError as exc:
        raise SchemaError(f"{where}({doc['kind']}): {exc}") from exc
