"""Who is asking: API keys with roles, so that a client of the service is not a labeller.

Three roles:

- `client` (`$MLOPS_API_KEY`, or a keys file entry): `/classify`, and
  `/feedback` as an end user's suggestion, which a labeller must confirm before
  it can train or judge a model;
- `labeller` (`$MLOPS_LABEL_KEY`, or an entry): `/classify`, and `/feedback` as
  a trusted label;
- `metrics` (`$MLOPS_METRICS_KEY`, or an entry): `/metrics`, which stays public
  while no metrics key is configured.

A keys file (`$MLOPS_KEYS_FILE`, YAML: a list of `{name, role, sha256}`) names
more credentials per role; it holds only SHA-256 digests of the keys
(`mlops keys add` makes one), so a leaked file grants nothing. Keys come from
the environment or that file, never from params.yaml. A given key is hashed
and compared with every stored digest in constant time.

With no client or labeller key at all, a request from loopback is this
machine's operator (`local`, trusted as a labeller: the offline default works
as before); one from anywhere else is refused unless `serve.allow_anonymous`
lets it in as an anonymous client, whose feedback is only ever a suggestion.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from mlops.core.environment import secret
from mlops.core.errors import MlopsError
from mlops.core.settings import ServeSettings

Role = Literal["client", "labeller", "metrics"]
ROLES: tuple[Role, ...] = ("client", "labeller", "metrics")
LOCAL = "local"          # the operator on this machine (loopback, no keys configured)
ANONYMOUS = "anonymous"  # anyone else, only with serve.allow_anonymous


@dataclass(frozen=True)
class Identity:
    """The credential a request was made with: its name (the feedback's source) and its role."""

    name: str
    role: Role


@dataclass(frozen=True)
class Credential:
    name: str
    role: Role
    digest: bytes  # SHA-256 of the key


def digest_of(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def read_keys_file(path: Path) -> list[Credential]:
    """The entries of a keys file, each checked; MlopsError naming the entry and field otherwise."""
    try:
        entries = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise MlopsError(f"keys file {path}: cannot be read ({error.strerror})") from None
    except yaml.YAMLError:
        raise MlopsError(f"keys file {path}: not YAML") from None
    if not isinstance(entries, list):
        raise MlopsError(f"keys file {path}: expected a list of {{name, role, sha256}} entries")
    credentials, names = [], set()
    for index, entry in enumerate(entries):
        where = f"keys file {path}: entry {index}"
        if not isinstance(entry, dict) or set(entry) != {"name", "role", "sha256"}:
            raise MlopsError(f"{where}: expected exactly the fields name, role, sha256")
        name, role, digest = entry["name"], entry["role"], entry["sha256"]
        if not isinstance(name, str) or not name.strip() or name in (LOCAL, ANONYMOUS) or len(name) > 64:
            raise MlopsError(f"{where}: name must be 1 to 64 characters, and not {LOCAL!r} or {ANONYMOUS!r}")
        if name in names:
            raise MlopsError(f"{where}: name {name!r} is given twice")
        if role not in ROLES:
            raise MlopsError(f"{where}: role must be one of {', '.join(ROLES)}, not {role!r}")
        try:
            raw = bytes.fromhex(str(digest))
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise MlopsError(f"{where}: sha256 must be 64 hex digits (`mlops keys add` writes it)")
        names.add(name)
        credentials.append(Credential(name, role, raw))
    return credentials


def is_loopback(host: str | None) -> bool:
    """Whether a peer or bind address is this machine's loopback (a unix socket, no peer, counts as local)."""
    if host is None:
        return True
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


class Credentials:
    """Every credential the service accepts, read once from the environment (and the keys file it names)."""

    def __init__(self, credentials: list[Credential], allow_anonymous: bool = False,
                 variables: dict[str, str] | None = None) -> None:
        self.credentials = credentials
        self.allow_anonymous = allow_anonymous
        self.variables = variables or {}  # role -> environment variable, for the messages

    @classmethod
    def from_environment(cls, serve: ServeSettings, environ: dict[str, str] | None = None) -> Credentials:
        variables = {"client": serve.api_key_env, "labeller": serve.label_key_env, "metrics": serve.metrics_key_env}
        keys = {role: secret(variable, environ) for role, variable in variables.items()}
        credentials = [Credential(role, role, digest_of(key.get_secret_value()))
                       for role, key in keys.items() if key is not None]
        keys_file = secret(serve.keys_file_env, environ)  # a path, read as the other names are
        if keys_file is not None:
            credentials += read_keys_file(Path(keys_file.get_secret_value()))
        return cls(credentials, serve.allow_anonymous, variables)

    @property
    def guarded(self) -> bool:
        """Whether any client or labeller key is configured (then every request to the API needs one)."""
        return any(c.role in ("client", "labeller") for c in self.credentials)

    @property
    def metrics_guarded(self) -> bool:
        return any(c.role == "metrics" for c in self.credentials)

    def identify(self, key: str) -> Identity | None:
        """The credential `key` belongs to, or None; every digest is compared, in constant time."""
        if not key:
            return None
        given, found = digest_of(key), None
        for credential in self.credentials:
            if hmac.compare_digest(given, credential.digest) and found is None:
                found = Identity(credential.name, credential.role)
        return found

    def anonymous(self, peer: str | None) -> Identity | None:
        """Who a request without a key is: the local operator, an anonymous client, or nobody (refused)."""
        if self.guarded:
            return None
        if is_loopback(peer):
            return Identity(LOCAL, "labeller")
        return Identity(ANONYMOUS, "client") if self.allow_anonymous else None

    def refusal(self, bind_host: str) -> str | None:
        """Why a server may not listen on `bind_host` with these credentials (None: it may)."""
        if is_loopback(bind_host) or self.guarded or self.allow_anonymous:
            return None
        return (f"serve: refusing to listen on {bind_host} without keys: set {self.variables.get('client')} "
                f"(clients) and {self.variables.get('labeller')} (labellers), or name keys in a keys file "
                f"(mlops keys add), or set serve.allow_anonymous: true to accept anyone as an anonymous client")


def key_of(headers: dict[bytes, bytes]) -> str:
    """The key a request carries: `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    bearer = headers.get(b"authorization", b"").decode("latin-1")
    return bearer[7:].strip() if bearer.lower().startswith("bearer ") else \
        headers.get(b"x-api-key", b"").decode("latin-1").strip()
