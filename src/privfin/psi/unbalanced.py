"""Unbalanced PSI: a large set blinded once under a long-lived key, many small client batches.

The large holder S (e.g. the government data center with every enterprise) holds a
long-lived OPRF key ``k`` named by a public *key id*. Offline, once per key (and set
version), it computes the tag table ``{T(H(y)^k) : y in Y}`` (sorted, so the table order
says nothing about Y's order) and caches it in a file of a directory the caller gives,
keyed by the key id (:func:`prepare_large_set`, :func:`load_large_set`). A client C (a bank
with a small set X) downloads the table once and caches it, keyed by the server's key id
(:class:`ClientCache`, :func:`unbalanced_sync`). Online, per batch, only X is processed
(:func:`unbalanced_client` / :func:`unbalanced_server`)::

    C -> S  upsi/hello    {version, mode, cached key id and table digest, |X|, id policy}   plaintext
    S -> C  upsi/hello    {version, key id, |Y|, table digest, send_table, error}           plaintext
    S -> C  upsi/table    T(H(y)^k) for y in Y, sorted, streamed; only if C's cache is
                          missing or stale (offline)                                        ciphertext
    C -> S  upsi/blinded  H(x)^c for x in X, one fresh per-batch scalar c                   ciphertext
    S -> C  upsi/eval     (H(x)^c)^k, same order                                            ciphertext
    C                     unblinds with c^-1 (mod l): H(x)^k; x in Y  <=>  T(H(x)^k) in table

Online cost: 2 hash-and-blind / blind operations per client id at C, one at S, and
``64 |X|`` bytes on the wire: proportional to |X|, independent of |Y|.

``H`` is :func:`privfin.psi.ecdh.hash_to_u` with domain ``domain(key_id, "unbalanced")`` and
``T`` the 128-bit tag with domain ``domain(key_id, "unbalanced/tag")``: the key id plays the
role of the job id, because the blinding outlives any one job. Unblinding uses the
invertible clamped scalar pair of :func:`privfin.psi.ecdh.new_invertible_scalar` (the
multi-party OPRF's construction). Collision bound: with 128-bit tags, |Y| <= 10^8 and at
most 10^8 client ids over the key's lifetime, a false hit has probability < 2^-74.

Key rotation: a new key gets a new key id (:meth:`OprfKey.generate`). The server's cache
file is named by the key id *and* records a keyed fingerprint of the key: a cache built under
another key is refused (:class:`StaleCacheError`), never used, and reusing a key id for a
different key is refused too. The client's cache is named by the server's key id; when the
server announces another key id (or another table digest for the same key: the set
changed) the client downloads the new table and deletes its tables of other key ids. Tables
of an old key are useless with the new key anyway: tags of ``H(x)^k_new`` never match
``T(H(y)^k_old)``.

Security
--------
Semi-honest parties; H is a random oracle; the one-more-DDH / one-more-gap-DH assumption on
Curve25519's prime-order subgroup (the standard assumption for a DH OPRF, e.g. Jarecki et al.);
scalars from the OS CSPRNG.

* **Client C learns** ``X ∩ Y`` (as its own input rows) and ``|Y|``; nothing else about Y:
  for ``y`` outside X the tag ``T(H(y)^k)`` is pseudorandom without ``k``.
* **Server S learns** the client's batch size ``|X|`` (after cleaning) and whether the
  client had the current table cached; ``H(x)^c`` under a fresh ``c`` is a uniformly random
  group element, so nothing about which ids were asked or whether they hit. S receives no
  result. Its ledger: ``upsi/hello`` (plaintext, size fixed for a given batch size and cache
  state) and ``|X|`` blinded points (ciphertext).
* **Inherent to this mode** (any unbalanced PSI with a reusable table): a client that keeps
  the table can test any id it likes against it later, at any time, and the server cannot
  revoke that. Testing an id needs that id's OPRF value ``H(x)^k``, which only an online
  exchange gives; so the client's total testing power equals the number of OPRF evaluations
  it was served, which the server counts (``ServeReport.batch_size``) and can cap
  (``max_batch``), but does not see the ids of. Compared with a fresh two-party PSI per batch,
  the difference is that answers stay valid across batches (same key) and that membership
  tests can be made after the fact against an old version of Y. If ``k`` leaks, anyone holding
  a table can test every candidate id offline (18-character ids are enumerable): keep ``k`` in
  the server's key store, rotate it on a schedule and on any suspicion.
* **When the mode is acceptable**: Y's size is not secret; the client is entitled to ask
  about ids in the volume it is served (contract, per-key quota); membership in Y is not
  more sensitive than that (e.g. "registered enterprise in the region"); keys are rotated
  at least per contract period. For lists where each membership is sensitive and per-query
  accounting matters (blacklists), use :mod:`privfin.psi.query` with ``max_batch`` and key
  rotation, or a per-job two-party PSI (:mod:`privfin.psi.protocol`).

* **One key per service.** The server exponentiates whatever point it receives, so a key
  shared between an unbalanced-PSI service and an anonymous-query service (or two lists) would
  let one service's clients evaluate the other's hash domain: give each table its own key
  (and key id).

Ledger kinds: hellos are ``plaintext``; the table, blinded points and evaluations are
``ciphertext`` (under ``k`` or ``c``, keys the receiver lacks).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from privfin.errors import ConfigError, CryptoError, PrivfinError, ProtocolError
from privfin.psi import ecdh
from privfin.psi.ids import HygieneReport, IdPolicy, clean_ids

# Shared helpers of the two-party/multi-party protocols (candidates for a psi/_common.py).
from privfin.psi._stream import TAG_DTYPE, Sender, check_points, member, pipeline, recv_stream, run_batched
from privfin.transport.base import Channel, Kind

PROTOCOL_VERSION: Final = 1
DEFAULT_BLOCK: Final = 1 << 12
TABLE_BLOCK: Final = 1 << 16
_KEY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class CacheError(PrivfinError):
    """A cache file is missing, malformed or does not belong to the given key."""


class StaleCacheError(CacheError):
    """A cache was built under another key (rotated or replaced): it must not be used."""


# -- long-lived key ---------------------------------------------------------------------------


def check_key_id(key_id: str) -> str:
    """Validate a key id (used in file names and hash domains): ``[A-Za-z0-9._-]``, 1-64 chars."""
    if not isinstance(key_id, str) or not _KEY_ID_RE.match(key_id):
        raise ConfigError("key id must be 1-64 characters from [A-Za-z0-9._-], starting alphanumeric", key="key_id")
    return key_id


@dataclass(frozen=True, repr=False)
class OprfKey:
    """A long-lived OPRF key of a large-set or list holder; ``key_id`` is public, ``scalar`` secret."""

    key_id: str
    scalar: bytes

    def __post_init__(self) -> None:
        check_key_id(self.key_id)
        if not isinstance(self.scalar, bytes) or len(self.scalar) != 32 or ecdh.clamp(self.scalar).to_bytes(
                32, "little") != self.scalar:
            raise CryptoError("an OPRF key scalar must be 32 bytes in clamped X25519 form")

    @classmethod
    def generate(cls, key_id: str) -> OprfKey:
        """A fresh key from the OS CSPRNG. Rotation = generate under a new key id."""
        return cls(check_key_id(key_id), ecdh.new_scalar())

    def fingerprint(self) -> str:
        """Keyed fingerprint binding caches to this exact key (reveals nothing about it)."""
        h = hashlib.blake2b(self.key_id.encode(), key=self.scalar, digest_size=16, person=b"privfin-keyfp-v1")
        return h.hexdigest()

    def save(self, path: str | Path) -> None:
        """Write the key to ``path`` (mode 0600; refuses to overwrite)."""
        p = Path(path)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"v": 1, "key_id": self.key_id, "scalar": self.scalar.hex()}, f)

    @classmethod
    def load(cls, path: str | Path) -> OprfKey:
        try:
            d = json.loads(Path(path).read_text())
            return cls(d["key_id"], bytes.fromhex(d["scalar"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError("cannot read the OPRF key file", file=str(path)) from exc

    def __repr__(self) -> str:
        return f"OprfKey(key_id={self.key_id!r}, scalar=<secret>)"


# -- tables and cache files -----------------------------------------------------------------------


@dataclass
class OprfTable:
    """What a client downloads: sorted tags (and, for queries, one ciphertext per tag)."""

    kind: str  # "unbalanced" or "query"
    key_id: str
    policy: dict[str, Any]
    tags: np.ndarray  # sorted, S16
    cts: np.ndarray | None = None  # (n, ct_len) uint8, row i belongs to tags[i]
    extra: dict[str, Any] = field(default_factory=dict)
    digest: str = ""

    def __len__(self) -> int:
        return len(self.tags)

    def compute_digest(self) -> str:
        h = hashlib.blake2b(digest_size=32, person=b"privfin-table-v1")
        h.update(json.dumps([self.kind, self.key_id, self.policy, self.extra], sort_keys=True).encode())
        h.update(np.ascontiguousarray(self.tags).tobytes())
        if self.cts is not None:
            h.update(np.ascontiguousarray(self.cts).tobytes())
        return h.hexdigest()

    def meta(self) -> dict[str, Any]:
        return {"v": PROTOCOL_VERSION, "kind": self.kind, "key_id": self.key_id, "policy": self.policy,
                "extra": self.extra, "digest": self.digest, "n": len(self.tags)}


def _write_npz(path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Atomically write one cache file (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
    os.replace(tmp, path)


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return json.loads(str(z["meta"]))
    except (OSError, ValueError, KeyError) as exc:
        raise CacheError(f"cache file '{path.name}' is unreadable") from exc


def _read_table(path: Path, meta: dict[str, Any]) -> OprfTable:
    try:
        with np.load(path, allow_pickle=False) as z:
            tags = z["tags"]
            cts = z["cts"] if "cts" in z.files else None
    except (OSError, ValueError, KeyError) as exc:
        raise CacheError(f"cache file '{path.name}' is unreadable") from exc
    if tags.dtype != TAG_DTYPE or tags.ndim != 1 or len(tags) != meta.get("n"):
        raise CacheError(f"cache file '{path.name}' is malformed")
    if cts is not None and (cts.dtype != np.uint8 or cts.ndim != 2 or len(cts) != len(tags)):
        raise CacheError(f"cache file '{path.name}' is malformed")
    return OprfTable(meta["kind"], meta["key_id"], meta["policy"], tags, cts, meta.get("extra", {}), meta["digest"])


def _table_arrays(t: OprfTable) -> dict[str, np.ndarray]:
    return {"tags": t.tags} if t.cts is None else {"tags": t.tags, "cts": t.cts}


@dataclass
class ServerTable:
    """The server's cached, preprocessed set or list under one key."""

    table: OprfTable
    fingerprint: str
    input_digest: str
    path: Path
    built: bool  # True if computed by this call, False if loaded from the cache
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def key_id(self) -> str:
        return self.table.key_id


def server_cache_path(cache_dir: str | Path, kind: str, key_id: str) -> Path:
    return Path(cache_dir) / f"{kind}-server-{check_key_id(key_id)}.npz"


def load_server_table(cache_dir: str | Path, kind: str, key: OprfKey) -> ServerTable:
    """Load the cache of ``key``; :class:`StaleCacheError` if it was built under another key."""
    path = server_cache_path(cache_dir, kind, key.key_id)
    if not path.exists():
        raise CacheError(f"no {kind} cache for key id '{key.key_id}' in {cache_dir}; preprocess first")
    t = time.perf_counter()
    meta = _read_meta(path)
    _check_server_meta(meta, kind, key, path)
    table = _read_table(path, meta)
    return ServerTable(table, meta["fingerprint"], meta["input_digest"], path, False,
                       {"load_s": time.perf_counter() - t})


def _check_server_meta(meta: dict[str, Any], kind: str, key: OprfKey, path: Path) -> None:
    if meta.get("v") != PROTOCOL_VERSION or meta.get("kind") != kind:
        raise CacheError(f"cache file '{path.name}' has another version or kind")
    if meta.get("key_id") != key.key_id or meta.get("fingerprint") != key.fingerprint():
        raise StaleCacheError(f"cache file '{path.name}' was built under another key than key id '{key.key_id}' "
                              "(rotated or replaced); it is not used. Preprocess again under the current key")


def save_server_table(st: ServerTable) -> None:
    meta = dict(st.table.meta(), fingerprint=st.fingerprint, input_digest=st.input_digest)
    _write_npz(st.path, meta, _table_arrays(st.table))


def input_digest(key: OprfKey, *parts: bytes | np.ndarray) -> str:
    """Keyed digest of the preprocessed input (decides whether a cache can be reused)."""
    h = hashlib.blake2b(digest_size=32, key=key.scalar, person=b"privfin-input-v1")
    for p in parts:
        b = np.ascontiguousarray(p).tobytes() if isinstance(p, np.ndarray) else p
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def reusable(cache_dir: str | Path, kind: str, key: OprfKey, digest: str, extra: dict[str, Any]) -> ServerTable | None:
    """The cached table if it exists for this key, input and parameters; None to rebuild.

    Raises :class:`StaleCacheError` if the key id's cache was built under a different key
    (a key id must name one key)."""
    path = server_cache_path(cache_dir, kind, key.key_id)
    if not path.exists():
        return None
    meta = _read_meta(path)
    _check_server_meta(meta, kind, key, path)
    if meta.get("input_digest") != digest or {k: meta["extra"].get(k) for k in extra} != extra:
        return None
    return load_server_table(cache_dir, kind, key)


class ClientCache:
    """A client's downloaded tables, one file per (kind, server key id) in ``cache_dir``.

    Use one directory per server: the newest table of a kind is the one announced in the hello.
    Files are written atomically; an unreadable file is ignored (the table is downloaded again).
    """

    def __init__(self, cache_dir: str | Path) -> None:
        self.dir = Path(cache_dir)

    def path(self, kind: str, key_id: str) -> Path:
        return self.dir / f"{kind}-client-{check_key_id(key_id)}.npz"

    def current(self, kind: str) -> dict[str, Any] | None:
        """Metadata of the newest cached table of ``kind`` (None if there is none)."""
        files = sorted(self.dir.glob(f"{kind}-client-*.npz"), key=lambda p: p.stat().st_mtime) \
            if self.dir.exists() else []
        for p in reversed(files):
            try:
                meta = _read_meta(p)
            except CacheError:
                continue
            if meta.get("v") == PROTOCOL_VERSION and meta.get("kind") == kind and p == self.path(kind, meta["key_id"]):
                return meta
        return None

    def load(self, kind: str, key_id: str, digest: str) -> OprfTable:
        p = self.path(kind, key_id)
        meta = _read_meta(p)
        if meta.get("key_id") != key_id or meta.get("digest") != digest or meta.get("kind") != kind:
            raise StaleCacheError(f"client cache '{p.name}' does not match the server's key id/table")
        return _read_table(p, meta)

    def store(self, table: OprfTable) -> None:
        """Store ``table`` and delete this kind's tables of every other key id (rotation)."""
        p = self.path(table.kind, table.key_id)
        _write_npz(p, table.meta(), _table_arrays(table))
        for old in self.dir.glob(f"{table.kind}-client-*.npz"):
            if old != p:
                old.unlink(missing_ok=True)


# -- large-set preprocessing ----------------------------------------------------------------------


def large_tags_chunk(values: np.ndarray, scalar: bytes, dst: bytes, tdst: bytes) -> np.ndarray:
    """``T(H(y)^k)`` for each id (executor work function): ``S16``."""
    return ecdh.tags_of(ecdh.hash_and_blind_chunk(values, scalar, dst), tdst)


def _domains(kind: str, key_id: str) -> tuple[bytes, bytes]:
    return ecdh.domain(key_id, kind), ecdh.domain(key_id, f"{kind}/tag")


def prepare_large_set(ids: Any, key: OprfKey, cache_dir: str | Path, *, policy: IdPolicy | None = None,
                      block: int = 1 << 17) -> ServerTable:
    """Blind the large set once under ``key`` and cache it (reused if the cache matches).

    The cache is reused when it was built under this key and from the same cleaned ids;
    a cache of the same key id under another key raises :class:`StaleCacheError`.
    """
    policy = policy or IdPolicy()
    t0 = time.perf_counter()
    clean = clean_ids(ids, policy, party="large-set holder")
    values = np.sort(clean.values)
    digest = input_digest(key, json.dumps(policy.to_wire(), sort_keys=True).encode(), values)
    hit = reusable(cache_dir, "unbalanced", key, digest, {})
    if hit is not None:
        hit.timings["clean_s"] = time.perf_counter() - t0
        return hit
    t = time.perf_counter()
    dst, tdst = _domains("unbalanced", key.key_id)
    parts = list(pipeline(large_tags_chunk, (values[s:s + block] for s in range(0, len(values), block)),
                           key.scalar, dst, tdst))
    tags = np.sort(np.concatenate(parts))
    if len(tags) > 1 and (tags[1:] == tags[:-1]).any():
        raise CryptoError("tag collision in the large set (probability < 2^-75); rotate the key")
    blind_s = time.perf_counter() - t
    table = OprfTable("unbalanced", key.key_id, policy.to_wire(), tags)
    table.digest = table.compute_digest()
    st = ServerTable(table, key.fingerprint(), digest, server_cache_path(cache_dir, "unbalanced", key.key_id), True)
    save_server_table(st)
    st.timings.update(blind_s=blind_s, total_s=time.perf_counter() - t0)
    return st


def load_large_set(cache_dir: str | Path, key: OprfKey) -> ServerTable:
    """The cached large set of ``key`` (:class:`StaleCacheError` if built under another key)."""
    return load_server_table(cache_dir, "unbalanced", key)


# -- the exchange (shared with privfin.psi.query) -------------------------------------------------


@dataclass
class ServeReport:
    """What the server saw in one request: the batch size and whether the table was sent."""

    party: str
    key_id: str
    mode: str
    batch_size: int
    table_sent: bool
    timings: dict[str, float] = field(default_factory=dict)


def _only_peer(chan: Channel) -> str:
    if len(chan.peers) != 1:
        raise ConfigError("unbalanced PSI and anonymous query are two-party protocols", key="parties")
    return chan.peers[0]


def _check_table_rows(width: int) -> Any:
    def check(obj: Any, tag: str, frm: str) -> np.ndarray:
        if not isinstance(obj, np.ndarray) or obj.dtype != np.uint8 or obj.ndim != 2 or obj.shape[1] != width:
            raise ProtocolError(f"'{tag}' from '{frm}': expected an (n, {width}) uint8 array")
        return obj
    return check


def serve(chan: Channel, st: ServerTable, key: OprfKey, *, prefix: str, max_batch: int | None = None,
          block: int = TABLE_BLOCK) -> ServeReport:
    """Answer one client request (table sync and/or one OPRF batch) with the long-lived key."""
    peer = _only_peer(chan)
    table = st.table
    if key.key_id != table.key_id or key.fingerprint() != st.fingerprint:
        raise StaleCacheError(f"the table was built under another key than key id '{key.key_id}'")
    timings: dict[str, float] = {}
    t = time.perf_counter()
    with chan.stage(f"{prefix}/setup"):
        hello = chan.recv(peer, f"{prefix}/hello", expect=dict)
        mode, n = hello.get("mode"), hello.get("n")
        error = None
        if hello.get("v") != PROTOCOL_VERSION or hello.get("kind") != table.kind:
            error = f"protocol version/kind differs (server: {table.kind} v{PROTOCOL_VERSION})"
        elif mode not in ("sync", "query") or not isinstance(n, int) or n < 0 or (mode == "query" and n < 1):
            error = "malformed hello (mode or batch size)"
        elif hello.get("policy") != table.policy:
            error = "id normalization policy differs from the one the table was built with"
        elif max_batch is not None and n > max_batch:
            error = f"batch of {n} ids exceeds the server's limit of {max_batch}"
        send_table = (hello.get("key_id"), hello.get("digest")) != (table.key_id, table.digest)
        chan.send(peer, f"{prefix}/hello", {"v": PROTOCOL_VERSION, "key_id": table.key_id, "n": len(table),
                                            "digest": table.digest, "extra": table.extra,
                                            "send_table": send_table and error is None, "error": error},
                  kind=Kind.PLAINTEXT)
        if error is not None:
            raise ProtocolError(f"request from '{peer}' refused: {error}")
    timings["setup_s"] = time.perf_counter() - t
    if send_table:
        t = time.perf_counter()
        with chan.stage(f"{prefix}/table"):
            sender = Sender(chan)
            try:
                tag_rows = table.tags.view(np.uint8).reshape(-1, ecdh.TAG_BYTES)
                for s in range(0, len(table), block):
                    rows = tag_rows[s:s + block] if table.cts is None else np.hstack(
                        (tag_rows[s:s + block], table.cts[s:s + block]))
                    sender.send(peer, f"{prefix}/table", rows, Kind.CIPHERTEXT)
                sender.flush()
            finally:
                sender.close()
        timings["table_s"] = time.perf_counter() - t
    if mode == "query":
        t = time.perf_counter()
        with chan.stage(f"{prefix}/evaluate"):
            sender = Sender(chan)
            try:
                incoming = recv_stream(chan, peer, f"{prefix}/blinded", n, check_points)
                for ev in pipeline(ecdh.blind_chunk, incoming, key.scalar):
                    sender.send(peer, f"{prefix}/eval", ev, Kind.CIPHERTEXT)
                sender.flush()
            finally:
                sender.close()
        timings["evaluate_s"] = time.perf_counter() - t
    return ServeReport(chan.party, table.key_id, mode, n if mode == "query" else 0, send_table, timings)


@dataclass
class _Session:
    table: OprfTable
    table_cached: bool
    points: np.ndarray | None  # H(x)^k for the client's cleaned ids, or None (sync)
    timings: dict[str, float]


def request(chan: Channel, kind: str, prefix: str, cache_dir: str | Path, policy: IdPolicy,
            values: np.ndarray | None, *, block: int = DEFAULT_BLOCK,
            ct_width_of: Callable[[dict[str, Any]], int] = lambda extra: 0) -> _Session:
    """Client side: sync the table (from cache or the server), then OPRF-evaluate ``values``.

    ``ct_width_of(extra)`` validates the server's table parameters and returns the
    ciphertext bytes per entry (0: tags only)."""
    peer = _only_peer(chan)
    cache = ClientCache(cache_dir)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    cur = cache.current(kind)
    n = 0 if values is None else len(values)
    with chan.stage(f"{prefix}/setup"):
        chan.send(peer, f"{prefix}/hello", {"v": PROTOCOL_VERSION, "kind": kind, "mode": "sync" if values is None
                                            else "query", "n": n, "policy": policy.to_wire(),
                                            "key_id": cur["key_id"] if cur else None,
                                            "digest": cur["digest"] if cur else None}, kind=Kind.PLAINTEXT)
        sh = chan.recv(peer, f"{prefix}/hello", expect=dict)
    if sh.get("error"):
        raise ProtocolError(f"'{peer}' refused the request: {sh['error']}")
    key_id, n_table, digest, extra = sh.get("key_id"), sh.get("n"), sh.get("digest"), sh.get("extra")
    if (sh.get("v") != PROTOCOL_VERSION or not isinstance(key_id, str) or not isinstance(n_table, int)
            or n_table < 0 or not isinstance(digest, str) or not isinstance(extra, dict)):
        raise ProtocolError(f"'{prefix}/hello' from '{peer}' is malformed")
    check_key_id(key_id)
    timings["setup_s"] = time.perf_counter() - t
    t = time.perf_counter()
    ct_width = ct_width_of(extra)
    if sh.get("send_table"):
        width = ecdh.TAG_BYTES + ct_width
        with chan.stage(f"{prefix}/table"):
            rows = list(recv_stream(chan, peer, f"{prefix}/table", n_table, _check_table_rows(width)))
        allr = np.concatenate(rows) if rows else np.empty((0, width), np.uint8)
        del rows
        tags = np.ascontiguousarray(allr[:, :ecdh.TAG_BYTES]).view(TAG_DTYPE).ravel()
        cts = np.ascontiguousarray(allr[:, ecdh.TAG_BYTES:]) if ct_width else None
        del allr
        table = OprfTable(kind, key_id, policy.to_wire(), tags, cts, extra, digest)
        if table.compute_digest() != digest:
            raise ProtocolError(f"the table from '{peer}' does not match its announced digest")
        cache.store(table)
        cached = False
        timings["table_download_s"] = time.perf_counter() - t
    else:
        if cur is None or (cur["key_id"], cur["digest"]) != (key_id, digest):
            raise ProtocolError(f"'{peer}' did not send a table although this party's cache is stale")
        try:
            table = cache.load(kind, key_id, digest)
        except CacheError as exc:  # unreadable arrays: drop the file so the next request downloads again
            cache.path(kind, key_id).unlink(missing_ok=True)
            raise CacheError(f"{chan.party}: the cached {kind} table was unreadable and has been removed; "
                             "retry the request") from exc
        cached = True
        timings["table_load_s"] = time.perf_counter() - t
    if values is None:
        return _Session(table, cached, None, timings)

    t = time.perf_counter()
    c, d = ecdh.new_invertible_scalar()
    dst = ecdh.domain(key_id, kind)
    sender = Sender(chan)
    try:
        with chan.stage(f"{prefix}/evaluate"):
            blocks = (values[s:s + block] for s in range(0, n, block))
            for pts in pipeline(ecdh.hash_and_blind_chunk, blocks, c, dst):
                sender.send(peer, f"{prefix}/blinded", pts, Kind.CIPHERTEXT)
            sender.flush()
            # unblind each block as it arrives, with d = c^-1:
            # X(d, X(k, X(c, H(x)))) = H(x)^k on the prime-order subgroup
            evals = recv_stream(chan, peer, f"{prefix}/eval", n, check_points)
            points = np.concatenate(list(pipeline(ecdh.blind_chunk, evals, d)))
    finally:
        sender.close()
    timings["oprf_s"] = time.perf_counter() - t
    return _Session(table, cached, points, timings)


# -- unbalanced PSI entry points ---------------------------------------------------------------------


@dataclass
class UnbalancedResult:
    """The client's output: its input rows in ``X ∩ Y`` (ascending), and what it learned."""

    party: str
    size: int
    indices: np.ndarray
    n_large: int
    key_id: str
    table_cached: bool
    hygiene: HygieneReport
    timings: dict[str, float] = field(default_factory=dict)


def unbalanced_server(chan: Channel, large: ServerTable, key: OprfKey, *, max_batch: int | None = None) -> ServeReport:
    """Large-set holder: answer one client request (sync or batch); learns the batch size only."""
    if large.table.kind != "unbalanced":
        raise ConfigError("unbalanced_server needs a table from prepare_large_set", key="large")
    return serve(chan, large, key, prefix="upsi", max_batch=max_batch)


def unbalanced_sync(chan: Channel, cache_dir: str | Path, *, policy: IdPolicy | None = None) -> OprfTable:
    """Client, offline: make sure the server's current table is cached in ``cache_dir``."""
    return request(chan, "unbalanced", "upsi", cache_dir, policy or IdPolicy(), None).table


def unbalanced_client(chan: Channel, ids: Any, cache_dir: str | Path, *, policy: IdPolicy | None = None,
                      block: int = DEFAULT_BLOCK) -> UnbalancedResult:
    """Client (small set): intersect ``ids`` with the server's large set; cost ~ len(ids).

    Raises :class:`~privfin.psi.ids.EmptyInputError` / ``DuplicateIdError`` /
    ``InvalidIdError`` per ``policy`` before anything is sent.
    """
    policy = policy or IdPolicy()
    t0 = time.perf_counter()
    clean = clean_ids(ids, policy, party=chan.party)
    sess = request(chan, "unbalanced", "upsi", cache_dir, policy, clean.values, block=block)
    t = time.perf_counter()
    assert sess.points is not None
    _, tdst = _domains("unbalanced", sess.table.key_id)
    tags = run_batched(ecdh.tags_of, sess.points, tdst)
    hit = member(tags, sess.table.tags)
    indices = np.sort(clean.rows[hit])
    sess.timings["match_s"] = time.perf_counter() - t
    sess.timings["total_s"] = time.perf_counter() - t0
    return UnbalancedResult(chan.party, int(hit.sum()), indices, len(sess.table), sess.table.key_id,
                            sess.table_cached, clean.report, sess.timings)


__all__ = [
    "OprfKey", "OprfTable", "ServerTable", "ServeReport", "UnbalancedResult", "ClientCache", "CacheError",
    "StaleCacheError", "prepare_large_set", "load_large_set", "unbalanced_server", "unbalanced_sync",
    "unbalanced_client", "large_tags_chunk", "check_key_id",
]
