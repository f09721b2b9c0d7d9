"""Anonymous query (匿踪查询, labeled PSI): hit/no-hit and the hit's payload, nothing else.

A list holder S (police, telecom, another bank) holds entries ``id -> payload`` (a risk
tag and a date, as bytes, text or a small JSON value) and a long-lived OPRF key ``k``
(:class:`~privfin.psi.unbalanced.OprfKey`, public key id). **Preprocessing, once per key and
list version** (:func:`prepare_list`, cached in a file keyed by the key id, like
:func:`~privfin.psi.unbalanced.prepare_large_set`): for every entry

* ``v = H(id)^k`` (X25519, hash to curve with domain ``domain(key_id, "query")``);
* ``tag || key = BLAKE2b-384(key=salt, person="privfin-lpsi-v1", domain(key_id, "query/kdf") || v)``:
  a 128-bit lookup tag and a 256-bit AEAD key (a keyed-BLAKE2b KDF with domain separation;
  ``salt`` is 32 random public bytes drawn per preprocessing run);
* ``ct = ChaCha20-Poly1305(key, nonce=0, aad="privfin/query/v1" || key_id || tag).encrypt(
  len(payload) || payload || zero padding)``: every plaintext is padded to ``2 + payload_size``
  bytes, so ciphertexts all have the same length and payload sizes do not leak. Each AEAD key
  encrypts exactly one message (fresh salt per run), so the fixed nonce is never reused;

and the table ``tag -> ct`` is sorted by tag (random order, unrelated to the list's). The
querier Q downloads the table once (offline; cached keyed by the key id and table digest).
Online, per batch, the exchange of :mod:`privfin.psi.unbalanced` runs for Q's ids only::

    Q -> S  query/hello    {version, mode, cached key id and table digest, |batch|, id policy}  plaintext
    S -> Q  query/hello    {version, key id, |list|, table digest, payload_size, salt, ...}       plaintext
    S -> Q  query/table    (tag, ct) rows, sorted by tag; only if Q's cache is missing/stale     ciphertext
    Q -> S  query/blinded  H(x)^c for x in the batch (fresh c per batch)                         ciphertext
    S -> Q  query/eval     (H(x)^c)^k, same order                                                ciphertext
    Q                      unblinds to H(x)^k, derives (tag, key); tag in table -> decrypt ct

Online cost: as unbalanced PSI, ``O(|batch|)``: one hash-and-blind, one blind and one KDF
per id at Q, one blind per id at S, 64 bytes per id on the wire.

Security
--------
Semi-honest parties; H and BLAKE2b are random oracles; the one-more-gap-DH assumption on
Curve25519's prime-order subgroup (DH OPRF); ChaCha20-Poly1305 is IND-CCA secure; all
scalars and salts from the OS CSPRNG.

* **Querier Q learns**, for each id of its batch, hit or no hit and, for a hit, the payload;
  and the list size ``|list|`` and the public ``payload_size`` bound. For a non-hit it learns
  nothing else. About entries it did not ask for it learns nothing: their tags and AEAD keys
  are pseudorandom without ``H(id)^k``, the ciphertexts have one fixed length.
* **List holder S learns** the batch size only (and whether Q had the current table cached):
  ``H(x)^c`` under a fresh ``c`` is uniformly random, S receives no result. Its disclosure
  ledger holds one ``query/hello`` (plaintext; the same bytes for two batches of the same
  size and cache state) and the blinded points (ciphertext, ``32 |batch|`` bytes).
* **Inherent to a downloadable table** (as in unbalanced PSI): Q keeps the table and can test
  any id later, offline against the table, once it has that id's OPRF value; OPRF values come
  only from the online exchange, one per id, counted by S (``ServeReport.batch_size``) and
  capped by ``max_batch``, with the ids unseen. Answers stay valid until the key is rotated,
  and S cannot revoke what Q looked up. If ``k`` leaks, every holder of a table can test all
  candidate ids (18-character ids are enumerable) and decrypt their payloads: keep ``k`` in a
  key store and rotate it (new key id) on a schedule; Q's old table is then useless.
  Acceptable when the querier is entitled to the volume of queries it is served (contract,
  quota per key id) and the list's size is not secret.
* **Stricter variant, not implemented**: no table download; instead Q sends, with each
  blinded query, a bucket index (a few bits of a hash of the id) and S returns only that
  bucket's rows re-randomized per query. This bounds what a kept table is worth to one bucket
  per query, at the price of leaking those bucket bits of each queried id to S (a stated
  leakage bound); or PIR-based labeled PSI (homomorphic encryption, e.g. APSI), which leaks
  nothing but costs far more. Left as a debt.

Ledger kinds: hellos are ``plaintext``; table rows, blinded points and evaluations are
``ciphertext``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from privfin.errors import ConfigError, CryptoError, DataError, ProtocolError
from privfin.psi import ecdh
from privfin.psi.ids import HygieneReport, IdPolicy, clean_ids
from privfin.psi._stream import TAG_DTYPE, pipeline, run_batched
from privfin.psi.unbalanced import (
    DEFAULT_BLOCK,
    OprfKey,
    OprfTable,
    ServeReport,
    ServerTable,
    input_digest,
    load_server_table,
    request,
    reusable,
    save_server_table,
    serve,
    server_cache_path,
)
from privfin.transport.base import Channel

KIND: Final = "query"
DEFAULT_PAYLOAD_SIZE: Final = 64
MAX_PAYLOAD_SIZE: Final = 4096
_NONCE: Final = bytes(12)
_AEAD_TAG: Final = 16
_KDF_BYTES: Final = ecdh.TAG_BYTES + 32


class PayloadTooLargeError(DataError):
    """A payload does not fit ``payload_size`` (names the row, never the value)."""


def encode_payload(p: Any) -> bytes:
    """Payload bytes: bytes as they are, text as UTF-8, anything else as compact sorted JSON."""
    if isinstance(p, (bytes, bytearray)):
        return bytes(p)
    if isinstance(p, str):
        return p.encode("utf-8")
    try:
        return json.dumps(p, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise DataError(f"a payload of type {type(p).__name__} is not bytes, text or JSON-serializable") from exc


def _aad(key_id: str) -> bytes:
    return b"privfin/query/v1" + len(key_id).to_bytes(1, "big") + key_id.encode()


def _kdf_rows(points: np.ndarray, salt: bytes, kdst: bytes) -> np.ndarray:
    base = hashlib.blake2b(digest_size=_KDF_BYTES, key=salt, person=b"privfin-lpsi-v1")
    base.update(kdst)
    raw = np.ascontiguousarray(points).tobytes()
    out = []
    for i in range(0, len(raw), ecdh.POINT_BYTES):
        h = base.copy()
        h.update(raw[i:i + ecdh.POINT_BYTES])
        out.append(h.digest())
    if not out:
        return np.empty((0, _KDF_BYTES), np.uint8)
    return np.frombuffer(b"".join(out), np.uint8).reshape(-1, _KDF_BYTES)


def entries_chunk(rows: np.ndarray, id_width: int, scalar: bytes, dst: bytes, kdst: bytes, salt: bytes,
                  aad: bytes) -> np.ndarray:
    """Executor work function: rows ``id bytes (NUL padded) || padded payload`` -> ``tag || ct``."""
    ids = np.ascontiguousarray(rows[:, :id_width]).view(f"S{id_width}").ravel()
    plain = np.ascontiguousarray(rows[:, id_width:])
    kdf = _kdf_rows(ecdh.hash_and_blind_chunk(ids, scalar, dst), salt, kdst)
    width = plain.shape[1] + _AEAD_TAG
    out = np.empty((len(rows), ecdh.TAG_BYTES + width), np.uint8)
    out[:, :ecdh.TAG_BYTES] = kdf[:, :ecdh.TAG_BYTES]
    kb = kdf.tobytes()
    pb = plain.tobytes()
    pw = plain.shape[1]
    cts = []
    for i in range(len(rows)):
        o = i * _KDF_BYTES
        tag = kb[o:o + ecdh.TAG_BYTES]
        cts.append(ChaCha20Poly1305(kb[o + ecdh.TAG_BYTES:o + _KDF_BYTES]).encrypt(
            _NONCE, pb[i * pw:(i + 1) * pw], aad + tag))
    if cts:
        out[:, ecdh.TAG_BYTES:] = np.frombuffer(b"".join(cts), np.uint8).reshape(-1, width)
    return out


def unblinded_kdf_chunk(points: np.ndarray, salt: bytes, kdst: bytes) -> np.ndarray:
    """Executor work function: ``tag || AEAD key`` rows from OPRF outputs ``H(x)^k``."""
    return _kdf_rows(points, salt, kdst)


def _split_entries(entries: Any) -> tuple[list[Any], list[Any]]:
    if isinstance(entries, Mapping):
        return list(entries.keys()), list(entries.values())
    try:
        pairs = list(entries)
        ids = [p[0] for p in pairs]
        vals = [p[1] for p in pairs]
    except (TypeError, IndexError, KeyError) as exc:
        raise DataError("entries must be a mapping id -> payload or a sequence of (id, payload) pairs") from exc
    return ids, vals


def prepare_list(entries: Any, key: OprfKey, cache_dir: str | Path, *, policy: IdPolicy | None = None,
                 payload_size: int = DEFAULT_PAYLOAD_SIZE, block: int = 1 << 17) -> ServerTable:
    """Preprocess the list once under ``key`` into an encrypted lookup table, cached by key id.

    Reuses the cache when it was built under this key from the same entries and
    ``payload_size``; a cache of the key id under another key raises
    :class:`~privfin.psi.unbalanced.StaleCacheError`. Payloads longer than ``payload_size``
    bytes raise :class:`PayloadTooLargeError`.
    """
    if not isinstance(payload_size, int) or not 1 <= payload_size <= MAX_PAYLOAD_SIZE:
        raise ConfigError(f"payload_size must be in 1..{MAX_PAYLOAD_SIZE}", key="payload_size")
    policy = policy or IdPolicy()
    t0 = time.perf_counter()
    ids, vals = _split_entries(entries)
    clean = clean_ids(ids, policy, party="list holder")
    n = len(clean)
    order = np.argsort(clean.values, kind="stable")
    values = clean.values[order]
    width = 2 + payload_size
    blocks = []
    for r in clean.rows[order].tolist():
        b = encode_payload(vals[r])
        if len(b) > payload_size:
            raise PayloadTooLargeError(f"list holder: the payload of row {r} has {len(b)} bytes; payload_size "
                                       f"is {payload_size}")
        blocks.append(len(b).to_bytes(2, "big") + b + bytes(payload_size - len(b)))
    plain = np.frombuffer(b"".join(blocks), np.uint8).reshape(n, width)
    del blocks
    extra_req = {"payload_size": payload_size}
    digest = input_digest(key, json.dumps(policy.to_wire(), sort_keys=True).encode(), values, plain)
    hit = reusable(cache_dir, KIND, key, digest, extra_req)
    if hit is not None:
        hit.timings["clean_s"] = time.perf_counter() - t0
        return hit
    t = time.perf_counter()
    salt = os.urandom(32)
    id_width = values.dtype.itemsize
    rows = np.hstack((values.view(np.uint8).reshape(n, id_width), plain))
    dst, kdst = ecdh.domain(key.key_id, KIND), ecdh.domain(key.key_id, f"{KIND}/kdf")
    parts = list(pipeline(entries_chunk, (rows[s:s + block] for s in range(0, n, block)), id_width, key.scalar,
                           dst, kdst, salt, _aad(key.key_id)))
    out = np.concatenate(parts)
    del parts, rows
    tags = np.ascontiguousarray(out[:, :ecdh.TAG_BYTES]).view(TAG_DTYPE).ravel()
    srt = np.argsort(tags, kind="stable")
    tags = tags[srt]
    if n > 1 and (tags[1:] == tags[:-1]).any():
        raise CryptoError("lookup-tag collision in the list (probability < 2^-75); rotate the key")
    cts = np.ascontiguousarray(out[srt, ecdh.TAG_BYTES:])
    del out
    encrypt_s = time.perf_counter() - t
    table = OprfTable(KIND, key.key_id, policy.to_wire(), tags, cts, {"payload_size": payload_size, "salt": salt.hex()})
    table.digest = table.compute_digest()
    st = ServerTable(table, key.fingerprint(), digest, server_cache_path(cache_dir, KIND, key.key_id), True)
    save_server_table(st)
    st.timings.update(encrypt_s=encrypt_s, total_s=time.perf_counter() - t0)
    return st


def load_list(cache_dir: str | Path, key: OprfKey) -> ServerTable:
    """The cached list table of ``key`` (``StaleCacheError`` if built under another key)."""
    return load_server_table(cache_dir, KIND, key)


def _ct_width(extra: dict[str, Any]) -> int:
    ps, salt = extra.get("payload_size"), extra.get("salt")
    if not isinstance(ps, int) or not 1 <= ps <= MAX_PAYLOAD_SIZE or not isinstance(salt, str) or len(salt) != 64:
        raise ProtocolError("the list holder's table parameters (payload_size, salt) are malformed")
    return 2 + ps + _AEAD_TAG


@dataclass
class QueryResult:
    """The querier's output: per input row hit/no-hit, and the payload of each hit."""

    party: str
    hits: np.ndarray  # bool per input row (rows dropped by the id policy are False)
    payloads: dict[int, bytes]  # input row -> payload, hits only
    n_list: int
    key_id: str
    table_cached: bool
    hygiene: HygieneReport
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.payloads)

    def json(self, row: int) -> Any:
        """The payload of input row ``row`` parsed as JSON (KeyError if not a hit)."""
        return json.loads(self.payloads[row])


def query_server(chan: Channel, lst: ServerTable, key: OprfKey, *, max_batch: int | None = None) -> ServeReport:
    """List holder: answer one request (table sync or one batch); learns the batch size only."""
    if lst.table.kind != KIND:
        raise ConfigError("query_server needs a table from prepare_list", key="list")
    return serve(chan, lst, key, prefix="query", max_batch=max_batch)


def query_sync(chan: Channel, cache_dir: str | Path, *, policy: IdPolicy | None = None) -> OprfTable:
    """Querier, offline: make sure the list holder's current table is cached in ``cache_dir``."""
    return request(chan, KIND, "query", cache_dir, policy or IdPolicy(), None, ct_width_of=_ct_width).table


def query_client(chan: Channel, ids: Any, cache_dir: str | Path, *, policy: IdPolicy | None = None,
                 block: int = DEFAULT_BLOCK) -> QueryResult:
    """Querier: look up a batch of ids anonymously; cost ~ len(ids).

    Raises :class:`~privfin.psi.ids.EmptyInputError` / ``DuplicateIdError`` /
    ``InvalidIdError`` per ``policy`` before anything is sent.
    """
    policy = policy or IdPolicy()
    t0 = time.perf_counter()
    clean = clean_ids(ids, policy, party=chan.party)
    sess = request(chan, KIND, "query", cache_dir, policy, clean.values, block=block, ct_width_of=_ct_width)
    table = sess.table
    assert sess.points is not None and table.cts is not None
    t = time.perf_counter()
    salt = bytes.fromhex(table.extra["salt"])
    kdf = run_batched(unblinded_kdf_chunk, sess.points, salt, ecdh.domain(table.key_id, f"{KIND}/kdf"))
    tags = np.ascontiguousarray(kdf[:, :ecdh.TAG_BYTES]).view(TAG_DTYPE).ravel()
    hits = np.zeros(clean.report.n_input, bool)
    payloads: dict[int, bytes] = {}
    if len(table):
        pos = np.searchsorted(table.tags, tags)
        pos[pos >= len(table)] = 0
        found = np.flatnonzero(table.tags[pos] == tags)
        aad = _aad(table.key_id)
        for i in found.tolist():
            tag = kdf[i, :ecdh.TAG_BYTES].tobytes()
            try:
                block_ = ChaCha20Poly1305(kdf[i, ecdh.TAG_BYTES:].tobytes()).decrypt(
                    _NONCE, table.cts[pos[i]].tobytes(), aad + tag)
            except InvalidTag as exc:
                raise ProtocolError("a table entry failed authentication (corrupt or foreign table)") from exc
            ln = (block_[0] << 8) | block_[1]
            if ln > len(block_) - 2:
                raise ProtocolError("a table entry has a bad payload length")
            row = int(clean.rows[i])
            hits[row] = True
            payloads[row] = block_[2:2 + ln]
    sess.timings["lookup_s"] = time.perf_counter() - t
    sess.timings["total_s"] = time.perf_counter() - t0
    return QueryResult(chan.party, hits, payloads, len(table), table.key_id, sess.table_cached, clean.report,
                       sess.timings)


__all__ = ["prepare_list", "load_list", "query_server", "query_sync", "query_client", "QueryResult",
           "PayloadTooLargeError", "encode_payload", "entries_chunk", "unblinded_kdf_chunk",
           "DEFAULT_PAYLOAD_SIZE"]
