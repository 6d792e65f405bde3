"""The registry's history as GTO git tags, for the people who read models from git (`gto show`, Studio).

The JSON registry beside the BentoML store (mlops.core.registry) stays the
service's pointer and the source of truth: this module only mirrors it, and
nothing here may fail a registry operation. A GTO error is one warning line
on stderr, and the registration, promotion or rollback goes on.

Where: the git repository that holds the BentoML home (the project's
`.bentoml/`, ignored by git, lies inside the project's repository). A home
outside any repository (a test's, `~/bentoml`) means no GTO: one line says
so, once per process.

What, for the artifact named like the BentoML model (`text-classifier`):

- registration: a version tag `text-classifier@vX.Y.Z`, one minor version up
  per registration (v0.0.1 first, as GTO starts, then v0.1.0, v0.2.0, ...: a
  registration is a new model, never a patch of the previous one). The tag's
  message names the BentoML model tag and the weights' digest. GTO allows one
  version per commit and a project registers many models on one commit (new
  labels, same code), so each version points at a registration commit of its
  own: HEAD's tree with the work tree's dvc.lock (which pins the model's data
  and `models/candidate` by hash), HEAD as its parent, on no branch. The tag
  keeps it alive; `git show text-classifier@v0.2.0` shows both.
- promotion and rollback: stage `prod` assigned to the champion's version
  (`text-classifier#prod#N`) and unassigned from every other version, so
  exactly one version is in `prod`, as the registry has one champion,
  whichever way GTO orders versions (by semver or by time). A champion that
  has no version yet (stored before GTO or outside git) is registered first.
- canary: stage `canary` assigned to the candidate's version while it serves
  a share of requests, unassigned when the canary ends (then `prod` moves as
  for a promotion, if it was promoted in full).

GTO orders a version's stage events by their tags' dates, to the second: a
stage tag waits out the second of its version's last one (at most a second,
when a promotion or rollback follows another at once), so an assignment never
ties with the unassignment it undoes, nor an unassignment with its assignment. Without a git
user (`user.name`, `user.email`), commits and tags take the identity in
GIT_COMMITTER_NAME / GIT_COMMITTER_EMAIL, or `mlops <mlops@localhost>`.
Tags stay local: `git push --tags` shares them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TypedDict

STAGE = "prod"
CANARY_STAGE = "canary"  # a candidate serving a share of requests (mlops/serving/canary.py)
IDENTITY = {"name": "mlops", "email": "mlops@localhost"}
SUBJECT = "BentoML model "  # a version tag's first line: SUBJECT + the model's tag

said_skipped = False


def say(line: str) -> None:
    """Tell the operator on stderr: stdout belongs to the command's own answer."""
    print(line, file=sys.stderr, flush=True)


def git(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run git in `cwd` and return its stdout; a failure raises with git's own last line."""
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                            env={**os.environ, **(env or {})})
    if result.returncode:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise RuntimeError(f"git {args[0]}: {lines[-1] if lines else f'exit {result.returncode}'}")
    return result.stdout.strip()


def repository(home: Path) -> Path | None:
    """The top of the git repository holding `home` (or its nearest existing parent), or None."""
    folder = Path(home).resolve()
    while not folder.is_dir():
        folder = folder.parent
    try:
        return Path(git(["rev-parse", "--show-toplevel"], folder))
    except (RuntimeError, OSError, subprocess.SubprocessError):  # not a repository, or no git at all
        return None


def identity(repo: Path) -> dict[str, str]:
    """The environment that gives git an identity for commits and tags: none when git has a user."""
    try:
        if git(["config", "user.name"], repo) and git(["config", "user.email"], repo):
            return {}
    except RuntimeError:  # `git config` exits 1 for a key that is not set
        pass
    name = os.environ.get("GIT_COMMITTER_NAME", IDENTITY["name"])
    email = os.environ.get("GIT_COMMITTER_EMAIL", IDENTITY["email"])
    return {"GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email, "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email}


def wait_past_stage_tags(repo: Path, name: str, commit: str) -> None:
    """Sleep until the clock has left the second of the latest stage tag on `commit` (at most a second).

    GTO orders a version's assignments and unassignments by their tags' dates,
    which count whole seconds and which GTO's git backend takes from the clock:
    a rollback that re-assigns `prod` in the second its version lost it would
    tie with that unassignment.
    """
    listing = git(["for-each-ref", "--format=%(*objectname) %(taggerdate:unix)", f"refs/tags/{name}#*"], repo)
    dates = [int(date) for target, _, date in (line.partition(" ") for line in listing.splitlines())
             if target == commit and date.strip()]
    if dates and max(dates) >= int(time.time()):
        time.sleep(max(dates) + 1 - time.time())


class Tagger(TypedDict):
    """GTO's tagger keyword arguments (typed, so that they cannot land on its boolean flags)."""

    author: str | None
    author_email: str | None


def signed(env: dict[str, str]) -> Tagger:
    """GTO's tagger arguments for `env` (identity's): None leaves git's own user."""
    return Tagger(author=env.get("GIT_COMMITTER_NAME"), author_email=env.get("GIT_COMMITTER_EMAIL"))


def artifact(model_tag: str) -> str:
    """The GTO artifact name of a BentoML tag: the part before the version."""
    return model_tag.split(":", 1)[0]


def version_of(repo: Path, model_tag: str) -> str | None:
    """The GTO version whose tag message names `model_tag`, or None."""
    name = artifact(model_tag)
    listing = git(["for-each-ref", "--format=%(refname:strip=2)%00%(contents:subject)", f"refs/tags/{name}@*"],
                  repo)
    for line in listing.splitlines():
        tag, _, subject = line.partition("\0")
        if subject.strip() == SUBJECT + model_tag:
            return tag.split("@", 1)[1]
    return None


def registration_commit(repo: Path, model_tag: str, digest: str | None, env: dict[str, str]) -> str:
    """A commit on no branch for one version: HEAD's tree with the work tree's dvc.lock, HEAD its parent."""
    with tempfile.TemporaryDirectory() as scratch:
        index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        git(["read-tree", "HEAD"], repo, index)
        if (repo / "dvc.lock").is_file():
            blob = git(["hash-object", "-w", "dvc.lock"], repo)
            git(["update-index", "--add", "--cacheinfo", f"100644,{blob},dvc.lock"], repo, index)
        tree = git(["write-tree"], repo, index)
    message = f"Register {model_tag} as a GTO version\n\nweights sha256 {digest or 'unknown'}\n"
    return git(["commit-tree", tree, "-p", "HEAD", "-m", message], repo, env)


def register(repo: Path, model_tag: str, digest: str | None) -> str:
    """Write `model_tag`'s version tag; its version."""
    import gto.api

    name, env = artifact(model_tag), identity(repo)
    commit = registration_commit(repo, model_tag, digest, env)
    first = not git(["tag", "--list", f"{name}@*"], repo)
    event = gto.api.register(repo, name, commit, bump_minor=not first, **signed(env),
                             message=f"{SUBJECT}{model_tag}\n\nweights sha256 {digest or 'unknown'}")
    return str(event.version)


def in_stage(repo: Path, name: str) -> list[str]:
    """Every version of `name` with stage `prod` active."""
    import gto.api

    stages = gto.api.find_versions_in_stage(repo, name, STAGE, assignments_per_version=-1, versions_per_stage=-1)
    return [stage.version for stage in stages or []]


def champion(repo: Path, model_tag: str, digest: str | None) -> str:
    """Make `model_tag`'s version the only one in `prod` (registering it first if need be); its version."""
    import gto.api

    name, env = artifact(model_tag), identity(repo)
    version = assign_stage(repo, model_tag, digest, STAGE, f"{SUBJECT}{model_tag} is the champion")
    for other in in_stage(repo, name):
        if other != version:
            wait_past_stage_tags(repo, name, git(["rev-parse", f"{name}@{other}^{{commit}}"], repo))
            gto.api.unassign(repo, name, version=other, stage=STAGE, **signed(env),
                             message=f"{name} {other} left {STAGE}: {model_tag} is the champion")
    return version


def canary_on(repo: Path, model_tag: str, digest: str | None) -> str:
    """Stage `canary` on `model_tag`'s version (registering it first if need be) while it serves a share."""
    return assign_stage(repo, model_tag, digest, CANARY_STAGE, f"{SUBJECT}{model_tag} serves a canary share")


def assign_stage(repo: Path, model_tag: str, digest: str | None, stage: str, message: str) -> str:
    """Assign `stage` to `model_tag`'s version (registering it first if need be), past older stage tags."""
    import gto.api

    name, env = artifact(model_tag), identity(repo)
    version = version_of(repo, model_tag) or register(repo, model_tag, digest)
    wait_past_stage_tags(repo, name, git(["rev-parse", f"{name}@{version}^{{commit}}"], repo))
    gto.api.assign(repo, name, stage, version=version, force=True, **signed(env), message=message)
    return version


def canary_off(repo: Path, model_tag: str, digest: str | None) -> str | None:
    """Stage `canary` off `model_tag`'s version when its canary ended (promoted in full or rolled back)."""
    import gto.api

    name, env = artifact(model_tag), identity(repo)
    version = version_of(repo, model_tag)
    if version is None:
        return None
    wait_past_stage_tags(repo, name, git(["rev-parse", f"{name}@{version}^{{commit}}"], repo))
    gto.api.unassign(repo, name, version=version, stage=CANARY_STAGE, **signed(env),
                     message=f"{SUBJECT}{model_tag}: its canary ended")
    return version


# what each action does, as a warning names it, and the function that does it
ACTIONS = {"register": ("register", register), "champion": (f"assign {STAGE} to", champion),
           "canary_on": ("assign canary to", canary_on), "canary_off": ("unassign canary from", canary_off)}


def mirrored(action: str, model_tag: str, digest: str | None, home: Path) -> str | None:
    """Run `action` (register, champion) in the repository holding `home`; never raises: the version, or None."""
    global said_skipped

    repo = repository(home)
    if repo is None:
        if not said_skipped:
            said_skipped = True
            say(f"GTO: skipped, {home} is not inside a git repository (the JSON registry alone records models)")
        return None
    try:
        return ACTIONS[action][1](repo, model_tag, digest)
    except Exception as error:  # noqa: BLE001 - GTO is a mirror: no failure of it may fail the registry
        detail = " ".join(str(error).split()) or type(error).__name__
        say(f"GTO: could not {ACTIONS[action][0]} {model_tag} in {repo} ({detail}); the JSON registry is unaffected")
        return None


def record_registration(model_tag: str, digest: str | None, home: Path) -> str | None:
    """After a model enters the BentoML store: its GTO version (or None where GTO is skipped or failed)."""
    return mirrored("register", model_tag, digest, home)


def record_champion(model_tag: str, digest: str | None, home: Path) -> str | None:
    """After a promotion or a rollback: `prod` on the champion's version alone."""
    return mirrored("champion", model_tag, digest, home)


def record_canary(model_tag: str, digest: str | None, home: Path, active: bool) -> str | None:
    """When a canary starts (`active`) or ends: stage `canary` on or off its version."""
    return mirrored("canary_on" if active else "canary_off", model_tag, digest, home)
