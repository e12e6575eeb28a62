"""The deployment files, checked offline: Kubernetes manifests against the API's JSON schemas
(kubernetes-validate, strict: unknown fields fail), with the security properties docs/kubernetes.md promises;
the Swarm stack's shape (the agent is global on labelled nodes and is given no API keys or database)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.37.0"


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
ALL = {f"{p.name}:{d['kind']}/{d['metadata']['name']}": d for p in MANIFESTS for d in documents(p)}


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in ALL.values() if d["kind"] == kind]


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_manifest_passes_the_kubernetes_schema(name: str) -> None:
    kubernetes_validate.validate(ALL[name], KUBERNETES_VERSION, strict=True)


def test_a_schema_violation_is_caught() -> None:
    bad = {**ALL[next(n for n in ALL if n.endswith("Deployment/jupycell-gateway"))]}
    bad["spec"] = {**bad["spec"], "replicas": "two"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


def test_rbac_is_pods_and_secrets_in_one_namespace() -> None:
    assert not by_kind("ClusterRole") and not by_kind("ClusterRoleBinding")
    (role,) = by_kind("Role")
    assert role["metadata"]["namespace"] == "jupycell"
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert resources == {"pods", "pods/log", "secrets"}
    assert all(rule["apiGroups"] == [""] for rule in role["rules"])
    assert not any("*" in rule["verbs"] or "*" in rule["resources"] for rule in role["rules"])


def test_kernel_pods_are_sandboxed_and_unreachable_but_from_the_gateway() -> None:
    (pod,) = by_kind("Pod")
    spec = pod["spec"]
    assert spec["runtimeClassName"] == "gvisor" and spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    (container,) = spec["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["limits"]["memory"] == container["resources"]["requests"]["memory"]
    assert all(v.get("emptyDir", {}).get("medium") == "Memory" for v in spec["volumes"] if "emptyDir" in v)
    policies = {p["metadata"]["name"]: p["spec"] for p in by_kind("NetworkPolicy")}
    assert policies["default-deny"]["podSelector"] == {} and set(policies["default-deny"]["policyTypes"]) == {
        "Ingress",
        "Egress",
    }
    kernels = policies["kernels-from-gateway-only"]
    assert kernels["egress"] == []
    assert kernels["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {"app": "jupycell-gateway"}}}]


def test_the_swarm_agent_is_global_on_kernel_nodes_and_never_sees_keys_or_the_database() -> None:
    stack = yaml.safe_load((ROOT / "deploy" / "swarm" / "stack.yml").read_text())
    agent = stack["services"]["agent"]
    assert agent["deploy"]["mode"] == "global"
    assert agent["deploy"]["placement"]["constraints"] == ["node.labels.jupycell.kernels == true"]
    assert agent["networks"] == ["control"] and "ports" not in agent
    assert set(agent["secrets"]) == {"jupycell_agent_curve", "jupycell_gateway_curve_pub"}
    assert not any("API_KEY" in name or "DATABASE" in name for name in agent["environment"])
    assert stack["networks"]["control"]["internal"] is True
    assert set(stack["services"]) == {"gateway", "agent", "postgres"}
