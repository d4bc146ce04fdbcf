#!/usr/bin/env python3
"""Validate KEDA objects (ScaledObject, TriggerAuthentication) against KEDA's CRD schema, strictly.

kubernetes-validate knows the built-in kinds only. KEDA's CRD schema comes here from PyPI's
`cloudcoil.models.keda` (pydantic models generated from KEDA's CRDs; pinned in
requirements.lock): each model gives its JSON schema, made strict the way `kubernetes-validate
--strict` is (an unknown property is an error), and every keda.sh document of the input is
checked against the schema of its kind. Documents of other API groups are ignored; a kind of
keda.sh without a schema here is an error.

Usage: keda.py FILE...   (multi-document YAML; `-` reads stdin). Exit 1 on any error.
It first checks itself: a ScaledObject with a misspelt field must be refused.
"""

import sys

import jsonschema
import yaml
from cloudcoil.models.keda import v1alpha1

KINDS = {
    "ScaledObject": v1alpha1.ScaledObject,
    "ScaledJob": v1alpha1.ScaledJob,
    "TriggerAuthentication": v1alpha1.TriggerAuthentication,
    "ClusterTriggerAuthentication": v1alpha1.ClusterTriggerAuthentication,
}


def strict(node):
    """Forbid properties a schema object does not list (as `--strict` does for built-in kinds)."""
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for v in node.values():
            strict(v)
    elif isinstance(node, list):
        for v in node:
            strict(v)
    return node


def validator(kind):
    schema = strict(KINDS[kind].model_json_schema(by_alias=True))
    return jsonschema.Draft202012Validator(schema)


def errors(doc):
    kind = doc.get("kind")
    if kind not in KINDS:
        return [f"keda.sh kind {kind!r} has no schema here (known: {', '.join(KINDS)})"]
    if doc.get("apiVersion") != "keda.sh/v1alpha1":
        return [f"apiVersion {doc.get('apiVersion')!r} is not keda.sh/v1alpha1"]
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator(kind).iter_errors(doc)
    ]


def self_check():
    bad = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "x"},
        "spec": {"scaleTargetRef": {"name": "x"}, "triggers": [{"type": "kafka", "metadata": {}}], "maxReplicas": 3},
    }
    if not errors(bad):
        sys.exit("keda.py: self-check failed: a misspelt field (maxReplicas) was accepted")


def main(paths):
    self_check()
    failed = checked = 0
    for path in paths:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
        for doc in yaml.safe_load_all(text):
            if not isinstance(doc, dict) or not str(doc.get("apiVersion", "")).startswith("keda.sh/"):
                continue
            name = f"{path}: {doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
            checked += 1
            errs = errors(doc)
            for e in errs:
                print(f"{name}: {e}", file=sys.stderr)
            failed += bool(errs)
            if not errs:
                print(f"{name}: valid")
    if checked == 0:
        sys.exit("keda.py: no keda.sh document in the input")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main(sys.argv[1:] or ["-"])
