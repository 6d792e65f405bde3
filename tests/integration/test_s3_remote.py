"""A real S3 remote: `dvc push` / `dvc pull` against moto's S3-compatible server on loopback.

Credentials come from the environment only (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY);
the project's DVC config holds the URL and the endpoint, nothing secret. Takes seconds.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import BIN, ROOT, free_port, run_cmd, stop

BUCKET = "mlops-remote"
SECRET = "loopback-secret-key"


@pytest.fixture
def s3_server():
    port = free_port()
    server = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(server)


@pytest.mark.slow  # a moto S3 server and dvc push/pull
def test_dvc_push_and_pull_through_s3(tmp_path, s3_server):
    import boto3

    credentials = {"AWS_ACCESS_KEY_ID": "loopback-key", "AWS_SECRET_ACCESS_KEY": SECRET,
                   "AWS_DEFAULT_REGION": "us-east-1"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | credentials | {
        "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    s3 = boto3.client("s3", endpoint_url=s3_server, aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=SECRET, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)

    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    for args in (["git", "init", "-q"], [str(BIN / "dvc"), "init", "-q"]):
        run_cmd(args, cwd=project, env=env)
    payload = {"data/a.csv": "text,label\nhello,greeting\n", "data/b.bin": os.urandom(70_000).hex()}
    for name, content in payload.items():
        (project / name).write_text(content)
    run_cmd([str(BIN / "dvc"), "add", "-q", "data/a.csv", "data/b.bin"], cwd=project, env=env)
    # what `make setup DVC_REMOTE=s3://... DVC_S3_ENDPOINT=...` runs
    run_cmd([str(BIN / "dvc"), "remote", "add", "--local", "--force", "--default", "storage",
             f"s3://{BUCKET}/store"], cwd=project, env=env)
    run_cmd([str(BIN / "dvc"), "remote", "modify", "--local", "storage", "endpointurl", s3_server], cwd=project,
            env=env)

    pushed = run_cmd([str(BIN / "dvc"), "push"], cwd=project, env=env).stdout
    assert "2 files pushed" in pushed, pushed
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert len(keys) == 2 and all(key.startswith("store/files/md5/") for key in keys)

    for name in payload:
        (project / name).unlink()
    subprocess.run(["rm", "-rf", str(project / ".dvc" / "cache")], check=True)
    pulled = run_cmd([str(BIN / "dvc"), "pull"], cwd=project, env=env).stdout
    assert "2 files fetched" in pulled or "2 files added" in pulled, pulled
    assert {name: (project / name).read_text() for name in payload} == payload
    configs = "".join(p.read_text() for p in (project / ".dvc").glob("config*"))
    assert SECRET not in configs and "loopback-key" not in configs and s3_server in configs

    # without the environment's credentials the same remote is refused: nothing else holds them
    bare = {k: v for k, v in env.items() if not k.startswith("AWS_")} | {"HOME": str(tmp_path)}
    refused = run_cmd([str(BIN / "dvc"), "pull", "-f"], cwd=project, env=bare, check=False)
    assert refused.returncode != 0 and "credentials" in refused.stderr, refused.stderr


def test_make_setup_installs_the_s3_extra_for_an_s3_remote():
    planned = subprocess.run(["make", "-n", "setup", "DVC_REMOTE=s3://bucket/path",
                              "DVC_S3_ENDPOINT=http://127.0.0.1:9000"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
    assert "pip install -q -c requirements.lock --no-build-isolation" in planned and "'.[s3]'" in planned
    assert "remote modify --local storage endpointurl http://127.0.0.1:9000" in planned
    assert not any(line.startswith("mkdir -p") and "s3:" in line for line in planned.splitlines())
    lock = (ROOT / "requirements.lock").read_text().splitlines()
    assert "dvc-s3==3.3.0" in lock and "moto==5.2.5" in lock and "boto3==" in (ROOT / "requirements.lock").read_text()
    assert Path(BIN / "moto_server").is_file()
