"""GTO tags mirror the JSON registry in a git repository, and are skipped or warned about, never fatal, elsewhere."""

import subprocess

import gto.api
import pytest

from mlops.core import gto_registry, registry


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def no_git_user(tmp_path, monkeypatch):
    """git with no user anywhere: an empty global config, no system config, no identity in the environment."""
    (tmp_path / "gitconfig").write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for key in ("GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def project(tmp_path, monkeypatch, no_git_user):
    """A git repository with one commit (dvc.lock tracked) and its own BentoML home inside, as `make setup` makes."""
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / ".gitignore").write_text("/.bentoml/\n")
    (repo / "dvc.lock").write_text("schema: '2.0'\n")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=dev", "-c", "user.email=dev@example.com", "commit", "-qm", "start")
    monkeypatch.setenv("BENTOML_HOME", str(repo / ".bentoml"))
    monkeypatch.setattr(registry, "bento_exists", lambda tag: True)  # no Bento is built: the registry's checks pass
    monkeypatch.setattr(gto_registry, "said_skipped", False)
    return repo


def store(tmp_path, weights: bytes) -> str:
    model_dir = tmp_path / f"model-{weights.decode()}"
    model_dir.mkdir()
    (model_dir / "model.safetensors").write_bytes(weights)
    return registry.register_model("text-classifier", model_dir, {"digest": registry.model_digest(model_dir)})


def in_prod(repo) -> list[str]:
    return [stage.version for stage in gto.api.find_versions_in_stage(
        repo, "text-classifier", "prod", assignments_per_version=-1, versions_per_stage=-1) or []]


def shown_prod(repo) -> str | None:
    return gto.api.show(repo)["text-classifier"]["stage"].get("prod")


@pytest.mark.slow  # git tags through GTO, one commit each
def test_register_promote_promote_rollback_keeps_the_champion_in_prod(project, tmp_path, capsys):
    # given two models registered in the project
    first = store(tmp_path, b"one")
    second = store(tmp_path, b"two")
    # then each has a version tag naming its BentoML tag and digest, on a registration commit of its own
    assert git(project, "tag", "--list", "text-classifier@*").split() == ["text-classifier@v0.0.1",
                                                                          "text-classifier@v0.1.0"]
    message = git(project, "tag", "--list", "--format=%(contents)", "text-classifier@v0.1.0")
    assert f"BentoML model {second}" in message and registry.model_digest(tmp_path / "model-two") in message
    commits = {git(project, "rev-list", "-n1", tag) for tag in ("text-classifier@v0.0.1", "text-classifier@v0.1.0")}
    assert len(commits) == 2 and git(project, "rev-parse", "HEAD") not in commits  # the branch did not move
    assert git(project, "show", "text-classifier@v0.1.0:dvc.lock") == "schema: '2.0'"
    # and the tagger is the fixed identity, since git has no user
    assert git(project, "tag", "--list", "--format=%(taggername) %(taggeremail)",
               "text-classifier@v0.0.1") == "mlops <mlops@localhost>"
    assert in_prod(project) == [] and shown_prod(project) is None

    # when the first is promoted, then the second, then rolled back
    registry.promote({"model": first, "bento": "b:1"})
    assert in_prod(project) == ["v0.0.1"] and shown_prod(project) == "v0.0.1"
    registry.promote({"model": second, "bento": "b:2"})
    assert in_prod(project) == ["v0.1.0"] and shown_prod(project) == "v0.1.0"
    restored = registry.rollback()

    # then prod follows the champion each time, and the JSON registry agrees
    assert restored["model"] == first and registry.champion()["model"] == first
    assert in_prod(project) == ["v0.0.1"] and shown_prod(project) == "v0.0.1"
    assert "GTO" not in capsys.readouterr().err  # neither skipped nor warned


@pytest.mark.slow  # git tags through GTO, one commit each
def test_a_canary_holds_stage_canary_until_it_is_promoted_in_full(project, tmp_path):
    first, second = store(tmp_path, b"one"), store(tmp_path, b"two")
    registry.promote({"model": first, "bento": "b:1"})
    registry.start_canary({"model": second, "bento": "b:2"}, 0.25, 60)
    assert gto.api.show(project)["text-classifier"]["stage"].get("canary") == "v0.1.0"
    assert in_prod(project) == ["v0.0.1"]  # the champion is still the only one in prod
    registry.promote({"model": second, "bento": "b:2"})
    assert gto.api.show(project)["text-classifier"]["stage"].get("canary") is None
    assert in_prod(project) == ["v0.1.0"]


def test_a_champion_without_a_version_is_registered_when_promoted(project):
    registry.promote({"model": "text-classifier:stored-before", "bento": "b:1", "digest": "abc"})
    assert in_prod(project) == ["v0.0.1"]
    assert "BentoML model text-classifier:stored-before" in git(project, "tag", "--list", "--format=%(contents)",
                                                               "text-classifier@v0.0.1")


def test_a_configured_git_user_signs_the_tags(project, tmp_path):
    git(project, "config", "user.name", "Dana")
    git(project, "config", "user.email", "dana@example.com")
    store(tmp_path, b"one")
    assert git(project, "tag", "--list", "--format=%(taggername)", "text-classifier@v0.0.1") == "Dana"


def test_outside_git_gto_is_skipped_in_one_line_and_the_registry_works(tmp_path, monkeypatch, capsys):
    # given a BentoML home in no git repository
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(registry, "bento_exists", lambda tag: True)
    monkeypatch.setattr(gto_registry, "said_skipped", False)
    # when models are registered, promoted and rolled back
    first = store(tmp_path, b"one")
    registry.promote({"model": first, "bento": "b:1"})
    registry.promote({"model": store(tmp_path, b"two"), "bento": "b:2"})
    registry.rollback()
    # then the registry did its work, and GTO said once that it was skipped
    assert registry.champion()["model"] == first
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("GTO")]
    assert len(lines) == 1 and "skipped" in lines[0] and "not inside a git repository" in lines[0]


def test_a_gto_failure_warns_in_one_line_and_the_registry_goes_on(tmp_path, monkeypatch, capsys):
    # given a repository without a commit: GTO has nothing to tag
    repo = tmp_path / "empty"
    repo.mkdir()
    git(repo, "init", "-q")
    monkeypatch.setenv("BENTOML_HOME", str(repo / ".bentoml"))
    monkeypatch.setattr(registry, "bento_exists", lambda tag: True)
    # when a model is registered and promoted
    tag = store(tmp_path, b"one")
    registry.promote({"model": tag, "bento": "b:1"})
    # then the registry has its champion, and each GTO step warned in one line
    assert registry.champion()["model"] == tag
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("GTO")]
    assert len(lines) == 2 and all("the JSON registry is unaffected" in line for line in lines)
    assert lines[0].startswith(f"GTO: could not register {tag}")
    assert lines[1].startswith(f"GTO: could not assign prod to {tag}")
