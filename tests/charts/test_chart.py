"""The Helm chart: lint, render with every values file, validate every object, check the contract.

helm comes from .tools/ (scripts/install_tools.sh); the tests fail with that hint when it is missing.
"""

from __future__ import annotations


import jsonschema
import pytest
import yaml

from tests.charts.chart_support import (
    CHART_DIR, CI_VALUES, FOREIGN_KINDS, by_kind, one, render, run_helm, validate,
)

VALUES_CASES = [None, *CI_VALUES]
VALUES_IDS = ["defaults", *[p.name.removesuffix("-values.yaml") for p in CI_VALUES]]


def values_args(values_file):
    return () if values_file is None else (values_file,)


def test_ci_values_cover_the_required_scenarios():
    names = {p.name for p in CI_VALUES}
    assert {"namespaced-values.yaml", "servicemonitor-values.yaml", "custom-image-values.yaml",
            "ha-values.yaml"} <= names


@pytest.mark.parametrize("values_file", VALUES_CASES, ids=VALUES_IDS)
def test_helm_lint_strict(values_file):
    args = ["lint", "--strict", str(CHART_DIR)] + ([] if values_file is None else ["-f", str(values_file)])
    result = run_helm(*args)
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values_file", VALUES_CASES, ids=VALUES_IDS)
def test_every_rendered_object_validates(values_file):
    objects = render(*values_args(values_file))
    assert objects, "nothing rendered"
    checked = 0
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in FOREIGN_KINDS:
            continue  # other projects' kinds: checked structurally below
        validate(obj)
        checked += 1
    assert checked >= 6


@pytest.mark.parametrize("values_file", VALUES_CASES, ids=VALUES_IDS)
def test_peering_objects_match_their_crd_schema(values_file):
    """kubernetes-validate has no schema for kopf.dev kinds; validate them against the CRDs we ship."""
    objects = render(*values_args(values_file))
    crds = {c["spec"]["names"]["kind"]: c for c in by_kind(objects, "CustomResourceDefinition")}
    for obj in objects:
        if obj["apiVersion"] != "kopf.dev/v1":
            continue
        crd = crds[obj["kind"]]
        jsonschema.validate(obj, crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
        assert ("namespace" in obj["metadata"]) == (crd["spec"]["scope"] == "Namespaced")


def test_security_context_is_hardened():
    deployment = one(render(), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    # The read-only root filesystem needs a writable /tmp, and only that.
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"][0]["emptyDir"]["sizeLimit"] == "1Gi"


def test_probes_use_the_health_port():
    container = one(render(), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}


def args_of(objects):
    return one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]


def test_default_args_are_the_tidal_run_contract():
    assert args_of(render()) == [
        "run", "--interval=15", "--log-format=json", "--log-level=info", "--peering=tidal",
        "--health-port=8080", "--metrics-port=9090", "--health-bind-address=0.0.0.0", "--metrics-bind-address=0.0.0.0",
    ]


def test_bind_addresses_reach_the_args():
    args = args_of(render(sets=("bindAddress.metrics=127.0.0.1", "bindAddress.health=::")))
    assert "--metrics-bind-address=127.0.0.1" in args and "--health-bind-address=::" in args


def test_values_reach_the_args():
    objects = render(CHART_DIR / "ci" / "namespaced-values.yaml",
                     sets=("operator.intervalSeconds=30", "peering.enabled=false", "operator.extraArgs={--x=1}"))
    args = args_of(objects)
    assert args[:4] == ["run", "--interval=30", "--namespace=team-a", "--namespace=team-b"]
    assert "--prometheus-url=http://prometheus-operated.monitoring.svc:9090" in args
    assert "--standalone" in args and not any(a.startswith("--peering") for a in args)
    assert args[-1] == "--x=1"
    # Standalone instances cannot see each other, so rollouts must not overlap.
    assert one(objects, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}


def test_custom_image_uses_digest_and_pull_secret():
    objects = render(CHART_DIR / "ci" / "custom-image-values.yaml")
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    image = yaml.safe_load((CHART_DIR / "ci" / "custom-image-values.yaml").read_text())["image"]
    assert pod["containers"][0]["image"] == f"{image['repository']}@{image['digest']}"
    assert pod["containers"][0]["imagePullPolicy"] == "Always"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["containers"][0]["resources"]["limits"]["memory"] == "2Gi"


def test_default_image_tag_is_the_app_version():
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    image = one(render(), "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"tidal:{chart['appVersion']}"


def test_servicemonitor_structure():
    """ServiceMonitor is prometheus-operator's kind: kubernetes-validate cannot check it, so check
    that it selects exactly the metrics Service and scrapes its named port."""
    objects = render(CHART_DIR / "ci" / "servicemonitor-values.yaml")
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [service["metadata"]["namespace"]]}
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics" and endpoint["interval"] == "15s"
    # The operator's series carry the workload's namespace label: keep it (not exported_namespace).
    assert endpoint["honorLabels"] is True
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "honorLabels"}
    assert set(monitor["spec"]) == {"namespaceSelector", "selector", "endpoints"}


def test_optional_objects_are_off_by_default():
    kinds = {o["kind"] for o in render()}
    assert not kinds & {"ServiceMonitor", "PrometheusRule", "PodDisruptionBudget", "ConfigMap", "Role", "RoleBinding", "Namespace"}


def test_service_selects_the_operator_pod_and_metrics_port():
    objects = render()
    service = one(objects, "Service")
    pod_template = one(objects, "Deployment")["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod_template["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"


def test_pdb_defaults_to_max_unavailable_and_honours_min_available():
    values = CHART_DIR / "ci" / "standalone-pdb-values.yaml"
    pdb = one(render(values), "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    pdb = one(render(values, sets=("podDisruptionBudget.minAvailable=1",)), "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1 and "maxUnavailable" not in pdb["spec"]


@pytest.mark.parametrize(("assignment", "message"), [
    ("replicaCount=6", "/replicaCount"),
    ("operator.logLevel=loud", "/operator/logLevel"),
    ("operator.logFormat=xml", "/operator/logFormat"),
    ("operator.intervalSeconds=0", "/operator/intervalSeconds"),
    ("operator.prometheusUrl=prometheus:9090", "/operator/prometheusUrl"),
    ("watchNamespaces={Team_A}", "/watchNamespaces/0"),
    ("image.digest=latest", "/image/digest"),
    ("operater.logLevel=info", "operater"),
])
def test_bad_values_are_rejected_naming_the_field(assignment, message):
    result = run_helm("template", "tidal", str(CHART_DIR), "--set", assignment, check=False)
    assert result.returncode != 0, f"--set {assignment} was accepted"
    assert message in result.stderr, result.stderr


def test_more_than_one_replica_needs_leader_election():
    result = run_helm("template", "tidal", str(CHART_DIR), "--set", "replicaCount=2", check=False)
    assert result.returncode != 0
    assert "replicaCount must be 0 or 1 without leader election" in result.stderr
    assert "leaderElection.enabled=true and peering.enabled=false" in result.stderr


def test_leader_election_excludes_peering():
    result = run_helm("template", "tidal", str(CHART_DIR), "--set", "leaderElection.enabled=true", check=False)
    assert result.returncode != 0 and "needs peering.enabled=false" in result.stderr


def test_two_replicas_run_active_standby_on_a_lease():
    objects = render(CHART_DIR / "ci" / "ha-values.yaml")
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--leader-elect" in container["args"] and "--standalone" in container["args"]
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    role = next(r for r in by_kind(objects, "Role") if r["metadata"]["name"].endswith("-leader-election"))
    assert role["metadata"]["namespace"] == "tidal-system"
    assert role["rules"] == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                              "verbs": ["get", "create", "update"]}]
    binding = next(b for b in by_kind(objects, "RoleBinding") if b["metadata"]["name"].endswith("-leader-election"))
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == deployment["spec"]["template"]["spec"]["serviceAccountName"]
    assert not by_kind(objects, "ClusterKopfPeering")
    assert one(objects, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_chart_crds_are_the_generated_ones():
    """charts/tidal/crds/ holds exactly the CRDs `tidal crds` generates (it also checks staleness)."""
    from tidal.api.crdgen import stale_crds

    assert stale_crds(CHART_DIR / "crds") == []
    for path in sorted((CHART_DIR / "crds").glob("*.yaml")):
        validate(yaml.safe_load(path.read_text()))


def test_notes_render_for_every_values_file():
    """NOTES.txt only renders on install: a client-side dry run needs no cluster."""
    for values_file in VALUES_CASES:
        args = ["install", "tidal", str(CHART_DIR), "--dry-run=client", "--namespace", "tidal-system"]
        args += [] if values_file is None else ["-f", str(values_file)]
        notes = run_helm(*args).stdout.split("NOTES:", 1)[1]
        assert "kubectl get mdep" in notes
        assert ("operator.prometheusUrl is empty" in notes) == (
            values_file is None or "prometheusUrl" not in values_file.read_text())
