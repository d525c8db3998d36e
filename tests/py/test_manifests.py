"""The deployment package holds together: Kubernetes manifests, the
Dockerfile, compose, Prometheus rules and the Grafana dashboard.

Kubernetes objects are checked twice: against the API's own JSON schemas
(the `kubernetes-validate` package carries them, so this runs offline), in
strict mode so a misspelt field fails; then field by field for what
trackedge needs and a schema cannot say (Pod Security "restricted", probes on
the admin port, a shutdown budget that fits the grace period, a ConfigMap
whose TOML trackedge would accept, selectors that match).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path, PurePosixPath

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
MANIFEST = K8S / "trackedge.yaml"
SECRET_EXAMPLE = K8S / "secret.example.yaml"
NETWORK_POLICY = K8S / "networkpolicy.yaml"
SERVICE_MONITOR = K8S / "servicemonitor.yaml"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERTS_TEST = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "trackedge-dashboard.json"
COMPOSE = ROOT / "deploy" / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DEFAULTS = ROOT / "config" / "trackedge.toml"

# Kubernetes versions the manifests must be valid for: the oldest with the
# preStop `sleep` action on by default, and the newest the validator knows.
K8S_VERSIONS = ("1.30.0", "latest")
MIN_SECRET_BYTES = 32
IN_CI = bool(os.environ.get("CI"))


def need_tool(ok: bool, what: str) -> None:
    """Skips on a developer machine that lacks `what`; fails in CI, where
    .ci/run installs it, so a missing install step cannot hide as a skip."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"{what} is not installed; .ci/run should install it")
    pytest.skip(f"{what} is not installed")


def load_docs(path: Path) -> list[dict]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [
        d
        for d in docs
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def quantity(q: str | int) -> float:
    """A Kubernetes resource quantity ("128Mi", "2Gi", "500m", "1") as a number."""
    s = str(q)
    units = {
        "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
        "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "m": 1e-3,
    }
    for suffix, factor in sorted(units.items(), key=lambda u: -len(u[0])):
        if s.endswith(suffix):
            return float(s[: -len(suffix)]) * factor
    return float(s)


def under(path: str, directory: str) -> bool:
    return PurePosixPath(directory) in PurePosixPath(path).parents


def is_loopback(listen: str) -> bool:
    host = listen.rsplit(":", 1)[0].strip("[]")
    return ipaddress.ip_address(host).is_loopback


def port_of(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return load_docs(MANIFEST)


@pytest.fixture(scope="module")
def secrets() -> list[dict]:
    return load_docs(SECRET_EXAMPLE)


@pytest.fixture(scope="module")
def sts(docs) -> dict:
    return one(docs, "StatefulSet")


@pytest.fixture(scope="module")
def pod(sts) -> dict:
    return sts["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def container(pod) -> dict:
    cs = [c for c in pod["containers"] if c["name"] == "trackedge"]
    assert len(cs) == 1
    return cs[0]


@pytest.fixture(scope="module")
def defaults() -> dict:
    return tomllib.loads(DEFAULTS.read_text())


@pytest.fixture(scope="module")
def config_map(docs) -> dict:
    return one(docs, "ConfigMap", "trackedge")


@pytest.fixture(scope="module")
def cfg(config_map, container) -> dict:
    """The TOML that the container's --config points at, parsed."""
    args = container["args"]
    path = args[args.index("--config") + 1]
    return tomllib.loads(config_map["data"][PurePosixPath(path).name])


def effective(cfg: dict, defaults: dict, section: str, key: str):
    return cfg.get(section, {}).get(key, defaults[section][key])


def mounts_by_volume(container: dict) -> dict[str, dict]:
    return {m["name"]: m for m in container.get("volumeMounts", [])}


def volumes(pod: dict) -> dict[str, dict]:
    """The pod's own volumes (claim templates are not among them)."""
    return {v["name"]: v for v in pod.get("volumes", [])}


# --- schema -----------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", [MANIFEST, SECRET_EXAMPLE, NETWORK_POLICY], ids=lambda p: p.name)
def test_manifests_validate_against_kubernetes_schemas(path, version):
    try:
        import kubernetes_validate
    except ImportError:
        kubernetes_validate = None
    need_tool(kubernetes_validate is not None, "the kubernetes-validate package")
    if version == "latest":
        version = kubernetes_validate.latest_version()
    errors = []
    for doc in load_docs(path):
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            name = f"{doc['kind']}/{doc['metadata']['name']}"
            errors.append(f"{name}: {e.message} at {'.'.join(map(str, e.path))}")
    assert not errors, f"{path.name} against Kubernetes {version}:\n" + "\n".join(errors)


def test_the_package_has_the_expected_objects(docs):
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
    assert kinds == sorted([
        "ConfigMap/trackedge",
        "Service/trackedge",
        "Service/trackedge-headless",
        "StatefulSet/trackedge",
        "PodDisruptionBudget/trackedge",
    ])
    # No Deployment beside the StatefulSet, no namespace pinned: the operator
    # picks it with -n.
    assert all("namespace" not in d["metadata"] for d in docs)


# --- selectors --------------------------------------------------------------


def test_selectors_match_the_pod_labels(docs, sts):
    labels = sts["spec"]["template"]["metadata"]["labels"]

    def matches(selector: dict) -> bool:
        return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

    assert matches(sts["spec"]["selector"]["matchLabels"])
    assert not sts["spec"]["selector"].get("matchExpressions")
    for svc in (d for d in docs if d["kind"] == "Service"):
        assert matches(svc["spec"]["selector"]), svc["metadata"]["name"]
    pdb = one(docs, "PodDisruptionBudget")
    assert matches(pdb["spec"]["selector"]["matchLabels"])
    for c in sts["spec"]["template"]["spec"].get("topologySpreadConstraints", []):
        assert matches(c["labelSelector"]["matchLabels"])


def test_services_point_at_container_ports(docs, container):
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for svc in (d for d in docs if d["kind"] == "Service"):
        for p in svc["spec"]["ports"]:
            t = p["targetPort"]
            assert t in ports or t in ports.values(), (svc["metadata"]["name"], t)
    public = one(docs, "Service", "trackedge")
    # Pixel and link traffic only: the admin port stays off the public Service.
    assert [p["targetPort"] for p in public["spec"]["ports"]] == ["http"]


def test_headless_service_governs_the_statefulset(docs, sts):
    headless = one(docs, "Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"


def test_pdb_keeps_pods_serving(docs, sts):
    spec = one(docs, "PodDisruptionBudget")["spec"]
    replicas = sts["spec"]["replicas"]
    assert replicas >= 2
    if "maxUnavailable" in spec:
        assert 1 <= spec["maxUnavailable"] < replicas
    else:
        assert 1 <= spec["minAvailable"] < replicas


# --- pod security -----------------------------------------------------------


def test_pod_security_restricted(pod, container):
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["runAsUser"] == 10001
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(flag), flag
    allowed = {
        "configMap", "secret", "emptyDir", "persistentVolumeClaim",
        "projected", "downwardAPI", "csi", "ephemeral",
    }
    for v in pod.get("volumes", []):
        kinds = set(v) - {"name"}
        assert kinds <= allowed, v
    for c in pod["containers"] + pod.get("initContainers", []):
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert not sc["capabilities"].get("add")
        assert not sc.get("privileged")
        assert sc.get("runAsUser", psc["runAsUser"]) != 0
        assert sc.get("seccompProfile", psc["seccompProfile"])["type"] == "RuntimeDefault"


def test_no_service_links_and_no_api_token(pod):
    # Service links would put TRACKEDGE_SERVICE_HOST, TRACKEDGE_PORT... in
    # the environment of every pod of a Service named trackedge.
    assert pod["enableServiceLinks"] is False
    assert pod["automountServiceAccountToken"] is False


def test_read_only_root_has_writable_places(pod, container, cfg, defaults):
    """Everything trackedge writes is on a volume, not the read-only root."""
    mounts = mounts_by_volume(container)
    vols = volumes(pod)
    assert "emptyDir" in vols[mounts["tmp"]["name"]] and mounts["tmp"]["mountPath"] == "/tmp"
    spool_dir = effective(cfg, defaults, "kafka", "spool_dir")
    writable = [m["mountPath"] for m in mounts.values() if not m.get("readOnly")]
    assert any(spool_dir == w or under(spool_dir, w) for w in writable), spool_dir


# --- image, resources -------------------------------------------------------


def test_image_tags_are_pinned(pod):
    for c in pod["containers"] + pod.get("initContainers", []):
        image = c["image"]
        if "@sha256:" in image:
            continue
        name, _, tag = image.rpartition(":")
        assert name and "/" not in tag, f"{image}: no tag"
        assert tag != "latest", f"{image}: pin a release, not latest"


def test_image_tag_is_the_crate_version(container):
    version = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]
    assert container["image"].endswith(f":{version}")


def test_resources(container):
    res = container["resources"]
    assert quantity(res["requests"]["cpu"]) > 0
    assert quantity(res["requests"]["memory"]) >= 64 * 2**20
    # The process stays under 64 MiB; the limit leaves librdkafka room.
    assert quantity(res["limits"]["memory"]) >= 128 * 2**20
    assert quantity(res["limits"]["memory"]) >= quantity(res["requests"]["memory"])


def test_worker_threads_follow_the_cpu_request(container, cfg, defaults):
    # 0 would mean one thread per core of the node, whatever the pod gets.
    threads = effective(cfg, defaults, "server", "worker_threads")
    assert threads >= 1
    assert threads <= max(2, 2 * quantity(container["resources"]["requests"]["cpu"]))


# --- probes, ports, shutdown ------------------------------------------------


def test_probes_on_the_admin_port(container, cfg, defaults):
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    admin = port_of(effective(cfg, defaults, "server", "admin_listen"))
    want = {
        "livenessProbe": "/livez",
        "readinessProbe": "/readyz",
        "startupProbe": "/livez",
    }
    for probe, path in want.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        port = ports.get(get["port"], get["port"])
        assert port == admin, f"{probe} probes port {port}, admin_listen is {admin}"


def test_config_ports_match_the_container(container, cfg, defaults, sts):
    listen = effective(cfg, defaults, "server", "listen")
    admin = effective(cfg, defaults, "server", "admin_listen")
    # The kubelet, the Service and Prometheus reach the pod on its address.
    assert not is_loopback(listen)
    assert not is_loopback(admin)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": port_of(listen), "admin": port_of(admin)}
    ann = sts["spec"]["template"]["metadata"].get("annotations", {})
    if "prometheus.io/port" in ann:
        assert int(ann["prometheus.io/port"]) == port_of(admin)


def prestop_seconds(container: dict) -> float:
    pre = container.get("lifecycle", {}).get("preStop")
    if pre is None:
        return 0
    if "sleep" in pre:
        return pre["sleep"]["seconds"]
    cmd = pre["exec"]["command"]
    assert cmd[0] in ("sleep", "/bin/sleep"), cmd
    return float(cmd[1])


def seconds(v) -> float:
    """A duration as the config writes it ("15s", "250ms", "2m"), or an old *_ms integer."""
    if isinstance(v, (int, float)):
        return v / 1000
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", v.strip())
    assert m, f"not a duration: {v!r}"
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def duration(cfg: dict, defaults: dict, key: str) -> float:
    """server.<key>, or the deprecated server.<key>_ms, from the ConfigMap over the defaults."""
    for table in (cfg.get("server", {}), defaults["server"]):
        if key in table:
            return seconds(table[key])
        if f"{key}_ms" in table:
            return seconds(table[f"{key}_ms"])
    raise AssertionError(f"config/trackedge.toml must document server.{key}")


def test_grace_period_covers_prestop_drain_and_flush(pod, container, cfg, defaults):
    drain = duration(cfg, defaults, "shutdown_grace")
    flush = duration(cfg, defaults, "flush_timeout")
    budget = prestop_seconds(container) + drain + flush
    grace = pod["terminationGracePeriodSeconds"]
    assert grace > budget, f"grace {grace}s <= preStop + drain + flush = {budget}s"
    # The default budget itself fits Kubernetes' default grace period.
    assert duration({}, defaults, "shutdown_grace") + duration({}, defaults, "flush_timeout") < 30


# --- the ConfigMap as trackedge reads it ------------------------------------


def test_config_mount_reaches_running_pods(pod, container, config_map):
    """A subPath mount never sees an edited ConfigMap, and SIGHUP would
    re-read the old file."""
    args = container["args"]
    assert args[0] == "serve"
    path = args[args.index("--config") + 1]
    vols = volumes(pod)
    mount = next(
        m for m in container["volumeMounts"]
        if "configMap" in vols.get(m["name"], {}) and under(path, m["mountPath"])
    )
    assert "subPath" not in mount
    assert vols[mount["name"]]["configMap"]["name"] == config_map["metadata"]["name"]
    assert PurePosixPath(path).name in config_map["data"]


def test_config_keys_exist(cfg, defaults):
    """trackedge refuses unknown keys: every key the ConfigMap sets must be
    one the embedded defaults document."""
    for section, table in cfg.items():
        assert section in defaults, f"unknown section [{section}]"
        for key in table:
            assert key in defaults[section], f"unknown key {section}.{key}"


def test_env_overrides_are_known_keys(container, defaults):
    for e in container.get("env", []):
        m = re.fullmatch(r"TRACKEDGE_([A-Z0-9_]+?)__([A-Z0-9_]+)", e["name"])
        if not m:
            continue
        section, key = m.group(1).lower(), m.group(2).lower()
        assert key in defaults.get(section, {}), e["name"]


def test_signing_keys_come_from_the_secret(pod, container, cfg, secrets):
    keys = cfg["signing"]["keys"]
    assert keys, "no signing key: the pod would refuse the development key on 0.0.0.0"
    assert any(not k.get("verify_only", False) for k in keys), "no key signs"
    ids = [k["id"] for k in keys]
    assert len(ids) == len(set(ids))
    vols = volumes(pod)
    mounts = [
        (m, vols[m["name"]]["secret"])
        for m in container["volumeMounts"]
        if "secret" in vols.get(m["name"], {})
    ]
    for k in keys:
        assert "secret" not in k, f"key {k['id']}: inline secret in a ConfigMap"
        path = k["secret_file"]
        m, secret = next(((m, s) for m, s in mounts if under(path, m["mountPath"])), (None, None))
        assert m is not None, f"{path} is not on a Secret volume"
        assert m.get("readOnly") is True
        assert "subPath" not in m, "a subPath Secret mount never sees a rotated key"
        example = one(secrets, "Secret", secret["secretName"])
        assert PurePosixPath(path).name in example["stringData"]


def test_admin_token_comes_from_a_secret(container, secrets):
    env = {e["name"]: e for e in container["env"]}
    ref = env["TRACKEDGE_SERVER__ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]
    example = one(secrets, "Secret", ref["name"])
    assert ref["key"] in example["stringData"]


def test_example_secrets_cannot_run(secrets):
    """Applied unchanged, the placeholders must stop start-up rather than
    give every reader of this repository the fleet's key."""
    for s in secrets:
        for name, value in s["stringData"].items():
            assert len(value.encode()) < MIN_SECRET_BYTES, f"{s['metadata']['name']}.{name}"


def test_sink_and_spool_on_the_claim(sts, container, cfg, defaults):
    assert effective(cfg, defaults, "sink", "kind") == "kafka"
    templates = {t["metadata"]["name"]: t for t in sts["spec"]["volumeClaimTemplates"]}
    spool_dir = effective(cfg, defaults, "kafka", "spool_dir")
    mount = next(
        m for m in container["volumeMounts"]
        if m["name"] in templates and (spool_dir == m["mountPath"] or under(spool_dir, m["mountPath"]))
    )
    claim = templates[mount["name"]]["spec"]
    assert claim["accessModes"] == ["ReadWriteOnce"]
    size = quantity(claim["resources"]["requests"]["storage"])
    spool_max = effective(cfg, defaults, "kafka", "spool_max_bytes")
    segment = effective(cfg, defaults, "kafka", "spool_segment_bytes")
    # Room for the open segment and the file system beside the spool.
    assert spool_max + 2 * segment < size, f"spool_max_bytes {spool_max} does not fit {size}"
    assert spool_dir.startswith("/"), "a relative spool_dir depends on the working directory"


# --- Dockerfile and compose -------------------------------------------------


def dockerfile_env() -> dict[str, str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for k, v in re.findall(r"(\w+)=(\S+)", line[4:]):
                env[k] = v.strip("'\"")
    return env


def test_dockerfile_listens_beyond_loopback_and_asks_for_a_key():
    env = dockerfile_env()
    assert not is_loopback(env["TRACKEDGE_SERVER__LISTEN"])
    assert not is_loopback(env["TRACKEDGE_SERVER__ADMIN_LISTEN"])
    # No key baked into the image: it would override every deployment's own
    # signing.keys, and it would be public.
    assert "TRACKEDGE_SIGNING__KEYS" not in env
    text = DOCKERFILE.read_text()
    assert "secret_file" in text and "TRACKEDGE_SIGNING__KEYS" in text, (
        "the Dockerfile should say how to give the image a key"
    )
    # A numeric user, so Kubernetes can check runAsNonRoot.
    assert re.search(r"^USER 10001:10001$", text, re.M)


def test_image_user_and_group_match_the_pod(pod):
    """The image's user is in group 10001, as the pods run (runAsGroup), so
    files the image owns and files the pod writes agree."""
    text = DOCKERFILE.read_text()
    psc = pod["securityContext"]
    assert re.search(rf"groupadd\b[^\n]*--gid {psc['runAsGroup']}\b", text)
    assert re.search(rf"useradd\b[^\n]*--uid {psc['runAsUser']}\b[^\n]*--gid {psc['runAsGroup']}\b", text)
    assert re.search(rf"^USER {psc['runAsUser']}:{psc['runAsGroup']}$", text, re.M)


def test_compose_gives_trackedge_a_key():
    compose = yaml.safe_load(COMPOSE.read_text())
    svc = compose["services"]["trackedge"]
    keys = tomllib.loads("keys = " + svc["environment"]["TRACKEDGE_SIGNING__KEYS"])["keys"]
    targets = {}
    for s in svc["secrets"]:
        name = s if isinstance(s, str) else s["source"]
        target = name if isinstance(s, str) else s.get("target", name)
        targets[f"/run/secrets/{target}"] = compose["secrets"][name]["file"]
    for k in keys:
        source = COMPOSE.parent / targets[k["secret_file"]]
        assert len(source.read_text().strip().encode()) >= MIN_SECRET_BYTES
    # Every image pinned to a version: `latest` changes under the user.
    for name, service in compose["services"].items():
        if "image" in service and "build" not in service:
            tag = service["image"].rpartition(":")[2]
            assert "/" not in tag and tag not in ("", "latest"), f"{name}: {service['image']}"
    # Its secrets are public: nothing it publishes leaves the machine.
    for service in compose["services"].values():
        for p in service.get("ports", []):
            assert str(p).startswith("127.0.0.1:"), p


# --- Prometheus and Grafana -------------------------------------------------


def alert_rules() -> dict[str, dict]:
    doc = yaml.safe_load(ALERTS.read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    return {r["alert"]: r for r in rules if "alert" in r}


def test_alerts_cover_sink_targets_and_readiness():
    rules = alert_rules()
    for name, r in rules.items():
        assert r["labels"]["severity"] in ("page", "warn"), name
        assert r["annotations"]["summary"], name
    sink = [r for r in rules.values() if re.search(r"trackedge_sink_up\s*==\s*0", r["expr"])]
    assert sink and all("for" in r for r in sink)
    assert any(re.search(r"\bup\{[^}]*trackedge[^}]*\}\s*==\s*0", r["expr"]) for r in rules.values())
    # Absent targets are found by trackedge's own metrics, whatever the job is called.
    assert any(re.search(r"absent\(\s*trackedge_build_info\s*\)", r["expr"]) for r in rules.values())
    # Not ready means starting or draining: the readiness alert must not be
    # about the sink, and sink alerts must not be about readiness.
    for r in rules.values():
        assert not ("trackedge_ready" in r["expr"] and "sink" in r["expr"]), r["alert"]


def test_every_alert_has_a_unit_test_that_fires_it():
    tests = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    fired, quiet = set(), set()
    for t in tests:
        for case in t.get("alert_rule_test", []):
            (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    rules = set(alert_rules())
    assert rules - fired == set(), f"no test makes these fire: {sorted(rules - fired)}"
    assert rules - quiet == set(), f"no test keeps these quiet: {sorted(rules - quiet)}"


def test_alerts_that_count_need_time_and_read_the_configured_maximum():
    rules = alert_rules()
    # One dropped event must not page anyone at night.
    assert "for" in rules["TrackedgeEventsDropped"]
    # The spool's bound is kafka.spool_max_bytes, whatever it is set to.
    spool = rules["TrackedgeSpoolNearlyFull"]["expr"]
    assert "trackedge_spool_max_bytes" in spool and not re.search(r"\d{6,}", spool)
    # Certificates: 14 days ahead.
    tls = [r for r in rules.values() if "trackedge_tls_certificate_expiry_seconds" in r["expr"]]
    assert tls and re.search(r"<\s*14\s*\*\s*86400", tls[0]["expr"])


def test_alerts_expect_the_job_the_service_monitor_gives(docs):
    """ServiceMonitor's job is the value of its jobLabel on the selected
    Service; the alert rules name that job."""
    sm = one(load_docs(SERVICE_MONITOR), "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    wanted = sm["spec"]["selector"]["matchLabels"]
    services = [d for d in docs if d["kind"] == "Service"
                and all(d["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())]
    assert [s["metadata"]["name"] for s in services] == ["trackedge-headless"]
    svc = services[0]
    ports = {p["name"] for p in svc["spec"]["ports"]}
    for e in sm["spec"]["endpoints"]:
        assert e["port"] in ports and e.get("path", "/metrics") == "/metrics"
    job = svc["metadata"]["labels"][sm["spec"]["jobLabel"]]
    assert f'job="{job}"' in ALERTS.read_text()
    assert "namespace" not in sm["metadata"]


def test_network_policy_admits_only_scrapers_to_the_admin_port(sts, container):
    np = one(load_docs(NETWORK_POLICY), "NetworkPolicy")
    labels = sts["spec"]["template"]["metadata"]["labels"]
    sel = np["spec"]["podSelector"]["matchLabels"]
    assert sel and all(labels.get(k) == v for k, v in sel.items())
    assert "Ingress" in np["spec"]["policyTypes"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}

    def port_names(rule):
        return {ports.get(p["port"], p["port"]) for p in rule.get("ports", [])}

    admin_rules = [r for r in np["spec"]["ingress"] if ports["admin"] in port_names(r) or not r.get("ports")]
    http_rules = [r for r in np["spec"]["ingress"] if ports["http"] in port_names(r)]
    # Pixels and links from anywhere...
    assert any(not r.get("from") for r in http_rules)
    # ...the admin port from named peers only, never from everyone, never
    # on the same rule as the public port.
    assert admin_rules
    for r in admin_rules:
        assert r.get("from"), "a rule admits everyone to the admin port"
        assert ports["http"] not in port_names(r)
        for peer in r["from"]:
            assert peer.get("podSelector", {}).get("matchLabels"), peer
            assert "ipBlock" not in peer or peer["ipBlock"]["cidr"] != "0.0.0.0/0"
    assert "monitoring" in NETWORK_POLICY.read_text() and "node" in NETWORK_POLICY.read_text().lower()


def test_alert_rules_pass_their_unit_tests():
    promtool = shutil.which("promtool")
    need_tool(promtool is not None, "promtool (Debian package prometheus)")
    # tests/ops.rs checks the rules' syntax and metric names; this runs the
    # unit tests in alerts.test.yml (which checks them as well).
    r = subprocess.run(
        [promtool, "test", "rules", str(ALERTS_TEST)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_dashboard_reads_readiness_and_sink_apart():
    dash = json.loads(DASHBOARD.read_text())
    panels = dash["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    exprs = {p["title"]: " ".join(t["expr"] for t in p.get("targets", [])) for p in panels}
    ready = [t for t, e in exprs.items() if "trackedge_ready" in e]
    sink = [t for t, e in exprs.items() if "trackedge_sink_up" in e]
    assert ready and sink
    for t in ready:
        assert "kafka" not in t.lower() and "sink" not in t.lower(), t
    # No two panels on the same spot.
    spots = [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in panels]
    assert len(spots) == len(set(spots))

