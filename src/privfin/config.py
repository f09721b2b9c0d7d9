"""Party and job configuration (TOML) as frozen dataclasses.

Every error is one line naming the key and the file. Relative paths in a party config
are resolved against the config file's folder; job inputs against the party's data dir.

``party.toml``::

    [party]
    name = "bank"
    listen = "127.0.0.1:50051"
    data_dir = "data"            # inputs are looked up here; outputs are written here
    job_store = "bank.sqlite"    # SQLite job store (created on first use)
    timeout_s = 600              # per-message timeout; a silent peer fails the job after it

    [tls]
    ca = "certs/ca.crt"
    cert = "certs/bank.crt"
    key = "certs/bank.key"

    [peers]
    gov = "127.0.0.1:50052"

``job.toml``::

    [job]
    name = "risk-scorecard"

    [parties.bank]
    role = "active"              # label holder
    input = "bank.csv"           # CSV or Parquet, relative to the party's data_dir
    id_column = "id"
    label_column = "y"

    [parties.gov]
    role = "passive"
    input = "gov.csv"
    id_column = "id"

    [[steps]]
    name = "psi"
    reveal = "intersection"      # step parameters are the other keys
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from privfin.errors import ConfigError
from privfin.transport.tls import TLSFiles

ROLES = ("active", "passive")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$")
_ADDR = re.compile(r"^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as exc:
        raise ConfigError("file not found", file=str(path)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=str(path)) from exc


def _parse_toml(text: str, file: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=file) from exc


class _Reader:
    """Typed access to a TOML table that names the key and file in every error."""

    def __init__(self, table: Any, prefix: str, file: str) -> None:
        if not isinstance(table, dict):
            raise ConfigError("expected a table", key=prefix, file=file)
        self.t, self.prefix, self.file = table, prefix, file

    def key(self, k: str) -> str:
        return f"{self.prefix}.{k}" if self.prefix else k

    def get(self, k: str, typ: type | tuple[type, ...], default: Any = ...) -> Any:
        if k not in self.t:
            if default is ...:
                raise ConfigError("missing required key", key=self.key(k), file=self.file)
            return default
        v = self.t[k]
        ok = isinstance(v, typ) and not (isinstance(v, bool) and typ in (int, float, (int, float)))
        if not ok:
            names = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
            raise ConfigError(f"expected {names}, got {type(v).__name__}", key=self.key(k), file=self.file)
        return v

    def name(self, k: str, default: Any = ...) -> str:
        v = self.get(k, str, default)
        if v is not None and not _NAME.match(v):
            raise ConfigError(f"invalid name {v!r} (letters, digits, _ . -; starting with a letter)",
                              key=self.key(k), file=self.file)
        return v

    def sub(self, k: str, default: Any = ...) -> _Reader:
        return _Reader(self.get(k, dict, default), self.key(k), self.file)

    def unknown(self, allowed: set[str]) -> None:
        extra = sorted(set(self.t) - allowed)
        if extra:
            raise ConfigError(f"unknown key (allowed: {', '.join(sorted(allowed))})", key=self.key(extra[0]),
                              file=self.file)


def _address(r: _Reader, k: str, value: str) -> str:
    if not _ADDR.match(value):
        raise ConfigError(f"expected host:port, got {value!r}", key=r.key(k), file=r.file)
    return value


@dataclass(frozen=True)
class PartyConfig:
    """One party's deployment: identity, network, TLS, storage."""

    name: str
    listen: str
    peers: dict[str, str]
    tls: TLSFiles
    data_dir: Path
    job_store: Path
    timeout_s: float = 600.0
    file: str = ""

    @classmethod
    def load(cls, path: str | Path) -> PartyConfig:
        path = Path(path).resolve()
        raw = _read_toml(path)
        root = _Reader(raw, "", str(path))
        root.unknown({"party", "tls", "peers"})
        p = root.sub("party")
        p.unknown({"name", "listen", "data_dir", "job_store", "timeout_s"})
        name = p.name("name")
        base = path.parent
        tls = root.sub("tls")
        tls.unknown({"ca", "cert", "key"})
        peers_r = root.sub("peers", {})
        peers = {}
        for peer, addr in peers_r.t.items():
            if not _NAME.match(peer):
                raise ConfigError(f"invalid party name {peer!r}", key=peers_r.key(peer), file=str(path))
            if peer == name:
                raise ConfigError("a party cannot be its own peer", key=peers_r.key(peer), file=str(path))
            peers[peer] = _address(peers_r, peer, peers_r.get(peer, str))
        timeout = float(p.get("timeout_s", (int, float), 600.0))
        if timeout <= 0:
            raise ConfigError("must be positive", key="party.timeout_s", file=str(path))
        return cls(
            name=name,
            listen=_address(p, "listen", p.get("listen", str)),
            peers=peers,
            tls=TLSFiles(*(base / tls.get(k, str) for k in ("ca", "cert", "key"))),
            data_dir=base / p.get("data_dir", str, "data"),
            job_store=base / p.get("job_store", str, f"{name}.sqlite"),
            timeout_s=timeout,
            file=str(path),
        )


@dataclass(frozen=True)
class PartySpec:
    """A party's part in a job: role and input table."""

    name: str
    role: str
    input: str
    id_column: str = "id"
    label_column: str | None = None
    features: tuple[str, ...] | None = None


@dataclass(frozen=True)
class StepSpec:
    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobSpec:
    """What a job computes: the parties, their roles and inputs, and the pipeline steps."""

    name: str
    parties: dict[str, PartySpec]
    steps: tuple[StepSpec, ...]
    text: str
    file: str = "job.toml"
    timeout_s: float | None = None

    @property
    def active(self) -> str:
        return next(n for n, p in self.parties.items() if p.role == "active")

    @property
    def passive(self) -> list[str]:
        return [n for n, p in self.parties.items() if p.role == "passive"]

    @classmethod
    def load(cls, path: str | Path) -> JobSpec:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ConfigError("file not found", file=str(path)) from exc
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, file: str = "job.toml", known_steps: set[str] | None = None) -> JobSpec:
        root = _Reader(_parse_toml(text, file), "", file)
        root.unknown({"job", "parties", "steps"})
        job = root.sub("job", {})
        job.unknown({"name", "timeout_s"})
        timeout = job.get("timeout_s", (int, float), None)
        parties_r = root.sub("parties")
        parties: dict[str, PartySpec] = {}
        for pname in parties_r.t:
            if not _NAME.match(pname):
                raise ConfigError(f"invalid party name {pname!r}", key=parties_r.key(pname), file=file)
            r = parties_r.sub(pname)
            r.unknown({"role", "input", "id_column", "label_column", "features"})
            role = r.get("role", str)
            if role not in ROLES:
                raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {role!r}", key=r.key("role"), file=file)
            label = r.get("label_column", str, None)
            if role == "active" and not label:
                raise ConfigError("the active party needs a label column", key=r.key("label_column"), file=file)
            if role == "passive" and label:
                raise ConfigError("only the active party holds labels", key=r.key("label_column"), file=file)
            feats = r.get("features", list, None)
            if feats is not None and not all(isinstance(f, str) for f in feats):
                raise ConfigError("expected a list of column names", key=r.key("features"), file=file)
            parties[pname] = PartySpec(pname, role, r.get("input", str), r.get("id_column", str, "id"), label,
                                       tuple(feats) if feats is not None else None)
        if len(parties) < 2:
            raise ConfigError("a job needs at least two parties", key="parties", file=file)
        n_active = sum(p.role == "active" for p in parties.values())
        if n_active != 1:
            raise ConfigError(f"exactly one party must be active, found {n_active}", key="parties", file=file)
        steps_raw = root.get("steps", list, [])
        steps = []
        for i, s in enumerate(steps_raw):
            sr = _Reader(s, f"steps[{i}]", file)
            sname = sr.get("name", str)
            if known_steps is not None and sname not in known_steps:
                raise ConfigError(f"unknown step {sname!r} (known: {', '.join(sorted(known_steps))})",
                                  key=sr.key("name"), file=file)
            steps.append(StepSpec(sname, {k: v for k, v in s.items() if k != "name"}))
        return cls(job.get("name", str, Path(file).stem), parties, tuple(steps), text, file,
                   float(timeout) if timeout is not None else None)

    def check_parties_known(self, me: str, peers: dict[str, str], party_file: str) -> None:
        """Every party in the job must be this party or one of its configured peers."""
        for pname in self.parties:
            if pname != me and pname not in peers:
                raise ConfigError(f"unknown party {pname!r}: not '{me}' and not among its peers in {party_file}",
                                  key=f"parties.{pname}", file=self.file)
        if me not in self.parties:
            raise ConfigError(f"party '{me}' takes no part in this job", key="parties", file=self.file)
