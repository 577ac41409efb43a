"""Every file under deploy/, checked offline by the real tools.

No Docker engine, Kubernetes cluster, Helm, SLURM or MPI is needed: yamllint, the
compose-spec schema, kubernetes-validate, the DaskCluster CRD's own schema (from the
dask-kubernetes wheel), ``kubectl kustomize``, hadolint, shellcheck, ``py_compile`` and
dask-jobqueue's job-script rendering run here, as subprocesses where they are programs.
Those tools come with the ``test`` extra; a missing one fails the test, with its name.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKER = DEPLOY / "docker"
K8S = DEPLOY / "kubernetes"
HPC = DEPLOY / "hpc"
TLS = DEPLOY / "tls"
TIMEOUT = 120


# ----------------------------------------------------------------------------- helpers


def tool(name: str) -> str:
    """The path of an executable from a test dependency (a wheel's bin/ first)."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"`{name}` not found: install blockdist's test extra (pip install -e .[test])")
    return found


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT,
                          **kwargs)


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, (
        f"{' '.join(map(str, result.args))} exited {result.returncode}\n"
        f"{result.stdout}\n{result.stderr}"
    )


def deploy_files() -> list[Path]:
    """Files under deploy/ that belong to the repository (no local .env or certificates)."""
    files = []
    for path in sorted(DEPLOY.rglob("*")):
        rel = path.relative_to(DEPLOY)
        if not path.is_file() or "__pycache__" in rel.parts or "certs" in rel.parts:
            continue
        if path.name == ".env":
            continue
        files.append(path)
    return files


def yaml_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}, for dask.config.set (which replaces nested dicts)."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


YAML_FILES = [p for p in deploy_files() if p.suffix in (".yaml", ".yml")]
SHELL_FILES = [p for p in deploy_files() if p.suffix == ".sh"]
PYTHON_FILES = [p for p in deploy_files() if p.suffix == ".py"]
#: Files that no program checks, with the test that reads them.
TEXT_FILES = {
    "README.md": "test_readme_covers_every_way_to_run",
    ".yamllint": "test_yamllint",
    "docker/.env.example": "test_compose_secrets_come_from_the_env_file",
    "docker/.gitignore": "test_compose_secrets_come_from_the_env_file",
    "docker/Dockerfile.dockerignore": "test_dockerfile_copies_exist_and_secrets_stay_out",
    "docker/requirements.txt": "test_dockerfile_copies_exist_and_secrets_stay_out",
}


def test_every_deploy_file_has_a_check():
    unchecked = []
    for path in deploy_files():
        rel = path.relative_to(DEPLOY).as_posix()
        if path.suffix in (".yaml", ".yml", ".sh", ".py") or path.name == "Dockerfile":
            continue
        if rel not in TEXT_FILES:
            unchecked.append(rel)
    assert not unchecked, f"deploy/ files nothing validates: {unchecked}; add a check"
    assert YAML_FILES and SHELL_FILES and PYTHON_FILES


# ------------------------------------------------------------------------------ YAML


def test_yamllint():
    result = run([sys.executable, "-m", "yamllint", "--strict", "-c", str(DEPLOY / ".yamllint"),
                  *map(str, YAML_FILES)])
    assert_ok(result)


def test_yamllint_config_catches_a_problem(tmp_path: Path):
    """The control: the same config rejects a duplicated key and a tab-broken line."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: 1\na: 2\n")
    result = run([sys.executable, "-m", "yamllint", "--strict", "-c", str(DEPLOY / ".yamllint"),
                  str(bad)])
    assert result.returncode != 0
    assert "duplication" in result.stdout


# ------------------------------------------------------------------------ docker compose

COMPOSE = DOCKER / "compose.yaml"
COMPOSE_TLS = DOCKER / "compose.tls.yaml"


def test_compose_files_match_the_compose_spec():
    result = run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                  "vendor.compose-spec", str(COMPOSE), str(COMPOSE_TLS)])
    assert_ok(result)


def test_compose_services_are_wired_together():
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"scheduler", "worker", "notebook", "s3"} <= set(services)
    assert services["worker"]["deploy"]["replicas"] == 2
    assert "tcp://scheduler:8786" in services["worker"]["command"]
    for name in ("scheduler", "worker", "notebook", "client"):
        service = services[name]
        assert service["image"].startswith("${BLOCKDIST_IMAGE:-blockdist")
        assert service["build"]["dockerfile"] == "deploy/docker/Dockerfile"
        assert (COMPOSE.parent / service["build"]["context"]).resolve() == ROOT
        assert service["environment"]["AWS_ENDPOINT_URL"] == "http://s3:9000"
        assert "data:/data" in service["volumes"]
    assert services["notebook"]["command"][:2] == ["jupyter", "lab"]
    for name in ("worker", "notebook"):
        assert services[name]["depends_on"]["scheduler"]["condition"] == "service_healthy"
    # The TLS override only touches services that exist, and moves them all to tls://.
    override = yaml.safe_load(COMPOSE_TLS.read_text())["services"]
    assert set(override) <= set(services)
    assert "tls" in override["scheduler"]["command"]
    assert "tls://scheduler:8786" in override["worker"]["command"]
    for name, service in override.items():
        assert service["environment"]["DASK_SCHEDULER_ADDRESS"] == "tls://scheduler:8786", name
        mounts = service["volumes"]
        assert "../tls/dask-tls.yaml:/etc/dask/tls.yaml:ro" in mounts
        assert "./certs:/etc/blockdist/tls:ro" in mounts


def test_compose_publishes_on_loopback_only():
    for path in (COMPOSE, COMPOSE_TLS):
        for name, service in yaml.safe_load(path.read_text())["services"].items():
            for port in service.get("ports", []):
                assert isinstance(port, str) and port.startswith("127.0.0.1:"), (path.name, name)
            assert service.get("network_mode") != "host", name


def test_compose_secrets_come_from_the_env_file():
    text = COMPOSE.read_text()
    # Every ${VAR:?...} the compose file requires is in .env.example, with a placeholder.
    required = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):\?", text))
    assert {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "JUPYTER_TOKEN"} <= required
    example = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            example[key.strip()] = value.strip()
    assert required <= set(example)
    for key in ("MINIO_ROOT_PASSWORD", "JUPYTER_TOKEN"):
        assert "change-me" in example[key], f"{key} must be an obvious placeholder"
    # No literal secret values in the compose files: secrets are interpolated.
    for path in (COMPOSE, COMPOSE_TLS):
        for name, service in yaml.safe_load(path.read_text())["services"].items():
            env = service.get("environment", {})
            for key, value in env.items():
                if re.search(r"SECRET|PASSWORD|TOKEN|_KEY$", key) and "KEY_ID" not in key:
                    assert str(value).startswith("${"), f"{path.name}:{name}:{key} is literal"
    # The real .env stays out of git.
    ignored = (DOCKER / ".gitignore").read_text().split()
    assert ".env" in ignored


# ----------------------------------------------------------------------------- Docker


def test_hadolint():
    assert_ok(run([tool("hadolint"), str(DOCKER / "Dockerfile")]))


def test_dockerfile_copies_exist_and_secrets_stay_out():
    text = (DOCKER / "Dockerfile").read_text()
    # Paths the build takes from the context (the repository root) exist there.
    sources = re.findall(r"^COPY (?:--\S+ )*(\S+) \S+$", text, flags=re.M)
    sources += re.findall(r"source=(\S+?),target=", text)
    sources = [s for s in sources if s not in (".", "/wheels")]
    assert sources, "no COPY found"
    for source in sources:
        assert (ROOT / source).is_file(), f"Dockerfile copies {source}, which does not exist"
    # It runs as a numeric, non-root user, with tini in front.
    users = re.findall(r"^USER (\S+)$", text, flags=re.M)
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"
    assert 'ENTRYPOINT ["tini"' in text
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    for pattern in ("**/.env", "**/*-key.pem", "**/.git"):
        assert pattern in ignore
    for line in (DOCKER / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            assert re.match(r"^[A-Za-z0-9_.\[\]-]+(>=|==|~=)[0-9]", line), line


# ------------------------------------------------------------------------------ shell


@pytest.mark.parametrize("script", SHELL_FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_shellcheck(script: Path):
    assert_ok(run([tool("shellcheck"), "--severity=style", str(script)]))
    assert os.access(script, os.X_OK), f"{script} is not executable"


# ----------------------------------------------------------------------------- Python


@pytest.mark.parametrize("script", PYTHON_FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_launchers_compile_and_show_help(script: Path, tmp_path: Path):
    assert_ok(run([sys.executable, "-m", "py_compile", str(script)],
                  env=dict(os.environ, PYTHONPYCACHEPREFIX=str(tmp_path))))
    # --help needs neither SLURM nor MPI: the heavy imports happen after parsing.
    result = run([sys.executable, str(script), "--help"])
    assert_ok(result)
    assert "usage:" in result.stdout


# ------------------------------------------------------------------------ dask-jobqueue


def test_jobqueue_config_renders_a_slurm_job_script():
    import dask.config
    from dask_jobqueue import SLURMCluster

    config = yaml.safe_load((HPC / "jobqueue.yaml").read_text())
    slurm = config["jobqueue"]["slurm"]
    with dask.config.set(flatten(config)), SLURMCluster(
        scheduler_options={"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"},
    ) as cluster:
        script = cluster.job_script()
    assert script.startswith("#!/usr/bin/env bash")
    assert f"#SBATCH --cpus-per-task={slurm['cores']}" in script
    assert f"#SBATCH -t {slurm['walltime']}" in script
    assert "#SBATCH --exclusive" in script
    assert "#SBATCH -J blockdist-worker" in script
    threads = slurm["cores"] // slurm["processes"]
    assert f"--nthreads {threads}" in script
    assert f"--nworkers {slurm['processes']}" in script
    assert "--memory-limit 60.00GiB" in script  # 240 GiB / 4 workers
    assert "--local-directory $TMPDIR" in script
    for line in slurm["job-script-prologue"]:
        assert line in script
    assert "tcp://127.0.0.1:" in script
    # A --memory-limit only from the config (dask-jobqueue adds it): never twice.
    assert script.count("--memory-limit") == 1


def test_slurm_launcher_dry_run_uses_tls():
    result = run([sys.executable, str(HPC / "slurm_matmul.py"), "a.zarr", "b.zarr", "c.zarr",
                  "--dry-run"])
    assert_ok(result)
    script = result.stdout
    assert "#SBATCH --cpus-per-task=32" in script
    assert re.search(r"dask_worker tls://127\.0\.0\.1:\d+ ", script)
    for flag in ("--tls-ca-file", "--tls-cert", "--tls-key"):
        assert flag in script
    assert "BEGIN" not in script  # certificate paths, never their contents
    assert script.startswith("#!") and "# --dry-run: placeholders of this rendering" in script
    assert re.search(r"#   scheduler address tls://127\.0\.0\.1:\d+ \(a real run starts its own", script)


# -------------------------------------------------------------------------- Kubernetes


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """`kubectl kustomize deploy/kubernetes`, parsed."""
    result = run([tool("kubectl"), "kustomize", str(K8S)])
    assert_ok(result)
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert docs
    return docs


def kinds(docs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for doc in docs:
        out.setdefault(doc["kind"], []).append(doc)
    return out


def test_kustomize_builds(rendered: list[dict]):
    by_kind = kinds(rendered)
    assert set(by_kind) >= {"Namespace", "PersistentVolumeClaim", "DaskCluster", "NetworkPolicy"}
    for doc in rendered:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "blockdist"
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "blockdist"
    (cluster,) = by_kind["DaskCluster"]
    for role in ("scheduler", "worker"):
        for container in cluster["spec"][role]["spec"]["containers"]:
            assert container["image"] == "blockdist:latest"


def pod_specs(doc: dict) -> list[dict]:
    """The pod specs inside a DaskCluster, a Job or a Deployment."""
    if doc["kind"] == "DaskCluster":
        return [doc["spec"]["scheduler"]["spec"], doc["spec"]["worker"]["spec"]]
    if doc["kind"] in ("Job", "Deployment"):
        return [doc["spec"]["template"]["spec"]]
    return []


def wrap_as_pods(doc: dict) -> list[dict]:
    """Each pod spec of a custom resource as a Pod, which kubernetes-validate knows."""
    return [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"check-{i}"}, "spec": spec}
        for i, spec in enumerate(pod_specs(doc))
    ]


def kubernetes_validate(docs: list[dict], tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    result = run([tool("kubernetes-validate"), "--strict", str(path)])
    assert_ok(result)
    assert "failed" not in (result.stdout + result.stderr).lower()


def test_core_kinds_are_valid_kubernetes(rendered: list[dict], tmp_path: Path):
    job = yaml_docs(K8S / "job-matmul.yaml")
    core = [d for d in rendered + job if "." not in d["apiVersion"].split("/")[0]
            or d["apiVersion"].startswith(("networking.k8s.io/", "batch/", "apps/"))]
    assert {d["kind"] for d in core} >= {"Namespace", "PersistentVolumeClaim", "NetworkPolicy",
                                         "Job"}
    # The DaskCluster's pod specs and scheduler Service, as the core kinds they become.
    (cluster,) = kinds(rendered)["DaskCluster"]
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "check"},
               "spec": cluster["spec"]["scheduler"]["service"]}
    kubernetes_validate([*core, *wrap_as_pods(cluster), service], tmp_path, "core")


def test_kubernetes_validate_rejects_a_misspelt_field(tmp_path: Path):
    """The control: strict validation of a core kind has teeth."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
           "spec": {"containers": [{"name": "a", "image": "b", "readinesProbe": {}}]}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(pod))
    result = run([tool("kubernetes-validate"), "--strict", str(path)])
    assert result.returncode != 0
    assert "readinesProbe" in result.stdout + result.stderr


def daskcluster_schema() -> dict:
    """The DaskCluster CRD's openAPIV3Schema from the dask-kubernetes wheel, made strict.

    The API server drops (or, with strict field validation, rejects) fields a structural
    schema does not name; additionalProperties: false makes check-jsonschema do the same,
    so a misspelt field fails here instead of vanishing silently in the cluster.
    """
    spec = importlib.util.find_spec("dask_kubernetes")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("dask-kubernetes is not installed: install blockdist's test extra")
    package = Path(next(iter(spec.submodule_search_locations)))
    crds = sorted(package.rglob("crds/daskcluster.yaml"))
    assert crds, f"no crds/daskcluster.yaml in {package}"
    crd = yaml.safe_load(crds[0].read_text())
    assert crd["spec"]["names"]["kind"] == "DaskCluster"
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = version["schema"]["openAPIV3Schema"]

    def strict(node):
        if isinstance(node, dict):
            if (node.get("type") == "object" and "properties" in node
                    and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                strict(value)
        elif isinstance(node, list):
            for value in node:
                strict(value)

    strict(schema)
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    schema["properties"].update(
        apiVersion={"const": f"{crd['spec']['group']}/v1"},
        kind={"const": "DaskCluster"},
        metadata={"type": "object", "required": ["name"]},
    )
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    return schema


@pytest.fixture(scope="module")
def crd_schema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crd") / "daskcluster.schema.json"
    path.write_text(json.dumps(daskcluster_schema()))
    return path


def check_jsonschema(schema: Path, *instances: Path) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "check_jsonschema", "--schemafile", str(schema),
                *map(str, instances)])


def test_daskcluster_matches_the_crd(crd_schema: Path, rendered: list[dict], tmp_path: Path):
    (cluster,) = kinds(rendered)["DaskCluster"]
    as_built = tmp_path / "daskcluster.rendered.json"
    as_built.write_text(json.dumps(cluster))
    assert_ok(check_jsonschema(crd_schema, K8S / "daskcluster.yaml", as_built))


def test_crd_check_rejects_a_misspelt_field(crd_schema: Path, tmp_path: Path):
    """The control: the strict CRD schema has teeth."""
    text = (K8S / "daskcluster.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("readinessProbe:", "readinesProbe:", 1))
    result = check_jsonschema(crd_schema, bad)
    assert result.returncode != 0
    assert "readinesProbe" in result.stdout + result.stderr


def test_pods_run_unprivileged(rendered: list[dict]):
    docs = rendered + yaml_docs(K8S / "job-matmul.yaml")
    specs = [s for d in docs for s in pod_specs(d)]
    assert len(specs) == 3
    for spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
    (cluster,) = kinds(rendered)["DaskCluster"]
    assert cluster["spec"]["scheduler"]["service"]["type"] == "ClusterIP"


#: Keys of the `dask` Helm chart's values (dask/helm-chart, dask/values.yaml and templates).
HELM_KEYS = {
    "": {"nameOverride", "fullnameOverride", "scheduler", "webUI", "worker",
         "additional_worker_groups", "jupyter"},
    "scheduler": {"name", "enabled", "image", "replicas", "serviceType", "loadBalancerIP",
                  "servicePort", "serviceAnnotations", "extraArgs", "resources", "tolerations",
                  "affinity", "nodeSelector", "securityContext", "serviceAccountName", "metrics",
                  "livenessProbe", "readinessProbe", "env"},
    "webUI": {"name", "servicePort", "ingress"},
    "worker": {"name", "image", "replicas", "strategy", "custom_scheduler_url",
               "default_resources", "env", "extraArgs", "resources", "mounts", "annotations",
               "tolerations", "affinity", "nodeSelector", "securityContext",
               "serviceAccountName", "port", "portDashboard", "threads_per_worker", "metrics",
               "livenessProbe", "readinessProbe"},
    "jupyter": {"name", "enabled", "rbac", "image", "serviceType", "servicePort", "password",
                "passwordHint", "env", "command", "args", "extraConfig", "resources", "mounts",
                "tolerations", "affinity", "nodeSelector", "securityContext",
                "serviceAccountName", "ingress", "livenessProbe", "readinessProbe"},
    "image": {"repository", "tag", "pullPolicy", "pullSecrets", "dask_worker"},
    "mounts": {"volumes", "volumeMounts"},
}


def test_helm_values_use_the_charts_keys():
    values = yaml.safe_load((K8S / "values.yaml").read_text())
    assert set(values) <= HELM_KEYS[""]
    for section in ("scheduler", "webUI", "worker", "jupyter"):
        assert set(values[section]) <= HELM_KEYS[section], section
        for sub in ("image", "mounts"):
            if sub in values[section]:
                assert set(values[section][sub]) <= HELM_KEYS[sub], f"{section}.{sub}"
    for section in ("scheduler", "worker", "jupyter"):
        assert values[section]["image"]["repository"] == "blockdist"
    for section in ("scheduler", "jupyter"):
        assert values[section]["serviceType"] == "ClusterIP"
    assert values["worker"]["image"]["dask_worker"] == "dask-worker"  # entrypoint maps it
    assert values["jupyter"]["password"] == ""  # the token comes from a Secret
    (token,) = [e for e in values["jupyter"]["env"] if e["name"] == "JUPYTER_TOKEN"]
    assert "secretKeyRef" in token["valueFrom"]


def test_helm_values_make_valid_pods(tmp_path: Path):
    """The pod-level pieces of values.yaml, placed as the chart's templates place them."""
    values = yaml.safe_load((K8S / "values.yaml").read_text())
    pods = []
    for role, args in (("scheduler", ["dask-scheduler", "--port=8786"]),
                       ("worker", ["dask-worker", "blockdist-scheduler:8786"]),
                       ("jupyter", values["jupyter"].get("args") or [])):
        v = values[role]
        container = {
            "name": role,
            "image": f"{v['image']['repository']}:{v['image']['tag']}",
            "imagePullPolicy": v["image"]["pullPolicy"],
            "args": args,
            "resources": v.get("resources", {}),
            "env": v.get("env") or [],
            "volumeMounts": (v.get("mounts") or {}).get("volumeMounts", []),
        }
        for probe in ("livenessProbe", "readinessProbe"):
            if v.get(probe):
                container[probe] = v[probe]
        pods.append({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": role},
            "spec": {"securityContext": v["securityContext"], "containers": [container],
                     "volumes": (v.get("mounts") or {}).get("volumes", [])},
        })
    kubernetes_validate(pods, tmp_path, "helm-pods")


# ------------------------------------------------------------------------------- TLS

MAKE_CERTS = TLS / "make-certs.sh"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("tls") / "certs"
    assert_ok(run(["bash", str(MAKE_CERTS), str(outdir), "DNS:scheduler", "10.1.2.3",
                   "node7.example.org"]))
    return outdir


ROLES = ("scheduler", "worker", "client")


def test_make_certs_writes_every_file_with_safe_modes(certs: Path):
    assert stat.S_IMODE(certs.stat().st_mode) == 0o700
    for name in ("ca", *ROLES):
        cert, key = certs / f"{name}.pem", certs / f"{name}-key.pem"
        assert "BEGIN CERTIFICATE" in cert.read_text()
        assert "PRIVATE KEY" in key.read_text()
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert stat.S_IMODE(cert.stat().st_mode) == 0o644
    assert sorted(p.name for p in certs.iterdir()) == sorted(
        [f"{n}.pem" for n in ("ca", *ROLES)] + [f"{n}-key.pem" for n in ("ca", *ROLES)]
    )


def x509_text(path: Path) -> str:
    result = run(["openssl", "x509", "-in", str(path), "-noout", "-text"])
    assert_ok(result)
    return result.stdout


@pytest.mark.parametrize("role", ROLES)
def test_make_certs_sans_and_usage(certs: Path, role: str):
    text = x509_text(certs / f"{role}.pem")
    for san in ("IP Address:127.0.0.1", "DNS:localhost", "DNS:scheduler",
                "IP Address:10.1.2.3", "DNS:node7.example.org"):
        assert san in text, f"{role}: {san} missing"
    assert "CA:FALSE" in text
    assert "TLS Web Server Authentication" in text and "TLS Web Client Authentication" in text
    assert_ok(run(["openssl", "verify", "-CAfile", str(certs / "ca.pem"),
                   str(certs / f"{role}.pem")]))
    assert "CA:TRUE" in x509_text(certs / "ca.pem")


def test_make_certs_refuses_to_overwrite_without_f(certs: Path, tmp_path: Path):
    before = (certs / "ca.pem").read_text()
    result = run(["bash", str(MAKE_CERTS), str(certs)])
    assert result.returncode != 0
    assert "exists" in result.stderr and "-f" in result.stderr
    assert (certs / "ca.pem").read_text() == before
    copy = tmp_path / "copy"
    shutil.copytree(certs, copy)
    assert_ok(run(["bash", str(MAKE_CERTS), "-f", "-d", "30", str(copy)]))
    assert (copy / "ca.pem").read_text() != before


@pytest.mark.parametrize("args, message", [
    (["-d", "soon"], "-d DAYS"),
    (["-d", "0"], "-d DAYS"),
    (["{out}", "12345"], "DNS:12345 or IP:12345"),
    (["{out}", "DNS:a,b"], "comma"),
    ([], "usage"),
])
def test_make_certs_rejects_bad_arguments(tmp_path: Path, args: list[str], message: str):
    out = tmp_path / "out"
    argv = [a.replace("{out}", str(out)) for a in args]
    if args and args[0] == "-d":
        argv.append(str(out))
    result = run(["bash", str(MAKE_CERTS), *argv])
    assert result.returncode != 0
    assert message in result.stderr
    assert not (out / "ca-key.pem").exists()


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> None:
    """A TLS handshake between the two contexts over a socket pair; raises on failure."""
    a, b = socket.socketpair()
    errors: list[BaseException] = []

    def serve():
        try:
            with server_ctx.wrap_socket(a, server_side=True) as conn:
                conn.sendall(b"ok")
        except (ssl.SSLError, OSError) as err:
            errors.append(err)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        b.settimeout(10)
        with client_ctx.wrap_socket(b, server_hostname="localhost") as conn:
            assert conn.recv(2) == b"ok"
    finally:
        thread.join(10)
        a.close()
        b.close()
    if errors:
        raise errors[0]


def test_make_certs_output_is_what_dask_security_accepts(certs: Path, tmp_path: Path):
    from distributed.security import Security

    security = Security(
        tls_ca_file=str(certs / "ca.pem"),
        **{f"tls_{r}_{part}": str(certs / (f"{r}.pem" if part == "cert" else f"{r}-key.pem"))
           for r in ROLES for part in ("cert", "key")},
        require_encryption=True,
    )
    # Every pair of roles that talk in a Dask cluster completes a mutual handshake.
    for server, client in (("scheduler", "worker"), ("scheduler", "client"),
                           ("worker", "worker"), ("worker", "scheduler")):
        _handshake(security.get_listen_args(server)["ssl_context"],
                   security.get_connection_args(client)["ssl_context"])
    # A client whose certificate another CA signed is turned away.
    stranger_dir = tmp_path / "stranger"
    assert_ok(run(["bash", str(MAKE_CERTS), str(stranger_dir)]))
    stranger = Security(tls_ca_file=str(certs / "ca.pem"),
                        tls_client_cert=str(stranger_dir / "client.pem"),
                        tls_client_key=str(stranger_dir / "client-key.pem"))
    with pytest.raises((ssl.SSLError, OSError)):
        _handshake(security.get_listen_args("scheduler")["ssl_context"],
                   stranger.get_connection_args("client")["ssl_context"])


# ------------------------------------------------------------------------------ README


def test_readme_covers_every_way_to_run():
    text = (DEPLOY / "README.md").read_text()
    for needle in ("docker compose", "kubectl apply -k deploy/kubernetes", "helm install",
                   "slurm_matmul.py", "mpi_matmul", "make-certs.sh", "--tls-ca-file",
                   "127.0.0.1"):
        assert needle in text, f"deploy/README.md does not mention {needle!r}"
    # Every deploy/ path the README names exists.
    for rel in set(re.findall(r"deploy/[\w./-]+\w", text)):
        assert (ROOT / rel).exists(), f"deploy/README.md names {rel}, which does not exist"
