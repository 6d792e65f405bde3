"""Secrets out of anything a run writes or says: its records, failure.md, alerts, printed lines, git errors.

In share-nothing mode the git remote's URL may carry a token
(`https://user:token@host/repo.git`); git echoes it in its errors, and
those errors travel into task logs, the run's failure.md (committed to its
branch) and the alert a webhook receives. Every such text goes through
`redact` on its way out. What it removes:

- the userinfo of any URL (`https://user:token@host` -> `https://***@host`);
- bearer and basic credentials (`Bearer abc...`, `Authorization: Basic ...`);
- the literal values, wherever they appear, of the environment variables that
  hold secrets: `MLOPS_*` names with KEY or SALT, names ending in `_KEY`
  (AIRFLOW__CORE__FERNET_KEY), any name with a TOKEN, SECRET or PASSWORD part
  (AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN among them), and the password
  part of any URL held in the environment (MLOPS_GIT_REMOTE, a database URL).

Only the standard library and mlops.core.io: DAG files and Airflow callbacks import it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from mlops.core.io import atomic_path

MASK = "***"
MIN_SECRET_CHARS = 4  # a shorter value (`1`, `on`) would mask ordinary words and numbers everywhere
USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s@'\"<>]+)@")
CREDENTIALS = re.compile(r"(?P<kind>\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# TOKEN etc. as a part of the name between underscores: TOKENIZERS_PARALLELISM is no secret
SECRET_NAME = re.compile(r"^MLOPS_.*(KEY|SALT)|_KEY$|(^|_)(TOKEN|SECRET|PASSWORD|PASSWD)(_|$)", re.IGNORECASE)
NOT_SECRETS = {"true", "false", "null", "none", "yes", "no", "on", "off"}  # flags: masking them breaks JSON


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """The literal secrets of the environment, longest first (a secret that contains another is masked whole)."""
    env = os.environ if env is None else env
    found = set()
    for name, value in env.items():
        if not value:
            continue
        if SECRET_NAME.search(name):
            found.add(value)
        for match in USERINFO.finditer(value):  # a URL in the environment with a password in it
            _, _, password = match.group("userinfo").partition(":")
            if password:
                found.update({password, unquote(password)})
    kept = (value for value in found if len(value) >= MIN_SECRET_CHARS and value.lower() not in NOT_SECRETS)
    return sorted(kept, key=len, reverse=True)


def redact(text: Any, env: Mapping[str, str] | None = None) -> str:
    """`text` (made a string) with URL userinfo, bearer/basic credentials and the environment's secrets masked."""
    text = "" if text is None else str(text)
    for value in secret_values(env):
        text = text.replace(value, MASK)
    text = USERINFO.sub(lambda match: f"{match.group('scheme')}{MASK}@", text)
    return CREDENTIALS.sub(lambda match: f"{match.group('kind')}{MASK}", text)


def redact_all(value: Any, env: Mapping[str, str] | None = None) -> Any:
    """Every string inside a JSON-like value (dicts, lists, tuples) redacted; other values as they are."""
    if isinstance(value, str):
        return redact(value, env)
    if isinstance(value, Mapping):
        return {key: redact_all(item, env) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_all(item, env) for item in value]
    return value


def write_redacted(path: Path, text: str) -> None:
    """Write a record that is committed, shared and read (a run's files, the feedback loop's record) atomically,
    secrets redacted: here in core, so that the loop and the orchestration write records the same way."""
    with atomic_path(path) as tmp:
        tmp.write_text(redact(text), encoding="utf-8")
