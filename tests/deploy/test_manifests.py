"""The deployment files parse and say what they claim: GPUs for Triton, probes on
every service, the settings the services actually read, commands that exist."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from services.cli import main as cli_main
from services.common.settings import CommonSettings
from services.gateway.settings import GatewaySettings
from services.jobs.settings import JobsSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def k8s_docs() -> list[dict]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def deployments() -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in k8s_docs() if d["kind"] == "Deployment"}


def test_every_manifest_is_namespaced_and_typed() -> None:
    docs = k8s_docs()
    assert {d["kind"] for d in docs} >= {
        "Namespace",
        "ConfigMap",
        "Deployment",
        "Service",
        "PersistentVolumeClaim",
        "HorizontalPodAutoscaler",
    }
    for d in docs:
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == "lightbox", d["metadata"]["name"]


def test_triton_runs_on_gpu_nodes() -> None:
    triton = deployments()["lightbox-triton"]["spec"]["template"]["spec"]
    container = triton["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert triton["nodeSelector"] == {"lightbox.dev/pool": "gpu"}
    assert any(t["key"] == "nvidia.com/gpu" for t in triton["tolerations"])


@pytest.mark.parametrize("name", ["lightbox-gateway", "lightbox-jobs", "lightbox-compositor"])
def test_services_have_probes_and_limits(name: str) -> None:
    container = deployments()[name]["spec"]["template"]["spec"]["containers"][0]
    assert "readinessProbe" in container and "livenessProbe" in container
    assert container["resources"]["limits"]["memory"]


def test_service_commands_exist() -> None:
    for name, dep in deployments().items():
        container = dep["spec"]["template"]["spec"]["containers"][0]
        if container["image"].startswith("lightbox/services"):
            args = container["args"]
            assert args[0] == "serve", name
            with pytest.raises(SystemExit):  # argparse accepts the service name
                cli_main([*args, "--help"])


def test_config_keys_are_settings_the_services_read() -> None:
    config = next(d for d in k8s_docs() if d["kind"] == "ConfigMap")["data"]
    known = set()
    for cls in (CommonSettings, GatewaySettings, JobsSettings):
        known |= {f"LIGHTBOX_{name.upper()}" for name in cls.model_fields}
    assert set(config) <= known, set(config) - known


def test_compose_file() -> None:
    compose = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) >= {
        "postgres",
        "redis",
        "triton",
        "compositor",
        "jobs",
        "worker",
        "gateway",
    }
    gpu = services["triton"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    env = services["gateway"]["environment"]
    assert env["LIGHTBOX_MODE"] == "production"
    assert env["LIGHTBOX_SIGNING_SECRET"].startswith("${LIGHTBOX_SIGNING_SECRET:?")
