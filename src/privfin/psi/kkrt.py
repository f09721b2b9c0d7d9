"""Two-party PSI from the KKRT16 batched OPRF (OT extension): the fast two-party option.

Roles: the *receiver* ``R`` (the party that learns; with both learning, the first name in
sorted order) cuckoo-hashes its set into bins and obtains one OPRF value per bin; the
*sender* ``S`` evaluates the OPRF on each of its ids in all three candidate bins. Primitives
and their parameters (512 base OTs, code width 512, AES-CTR PRG, BLAKE2b hash) are in
:mod:`privfin.crypto.ot`. ``d(x)`` = BLAKE2b-128 of the id under a per-job domain; it
never leaves its party.

Protocol::

    A -> B  psi/hello           parameters digest and |set|                      plaintext
    R <-> S psi/kkrt-base/*     512 base OTs (S chooses the secret bits s)       plaintext / ciphertext
    S -> R  psi/kkrt-code       AES key K of the pseudorandom code               plaintext
    R -> S  psi/kkrt-cuckoo     cuckoo seed and table size m                     plaintext
    R -> S  psi/kkrt-u          OT-extension columns, blocks of 65,536 bins      ciphertext
    S -> R  psi/kkrt-tags       T(F_{h_k(y)}(y || k)), k = 0..2, for y in S,     ciphertext
                                all 3|S| values in a secret random order
    R -> S  psi/kkrt-result     positions (in that order) of the matches,        plaintext, only if S learns
                                in the common order

Cuckoo hashing: ``m = ceil(1.27 |R|) + 16`` bins (rounded up to a multiple of 8), three
hash functions ``h_k(x)`` = 32-bit words of ``AES_seed(d(x))`` mod m, no stash. Each of R's
ids sits in one bin ``h_k(x)`` and uses OPRF input ``(x, k)``, so that S's three values of
one id are distinct even when two ``h_k`` coincide. With load 1/1.27 and three hash
functions, insertion fails with probability about 2^-40 for large sets (Pinkas, Schneider,
Zohner, TOPS 2018); a failed insertion (the eviction walk exceeds its round limit) draws a
new seed, up to 32 times, then raises :class:`CryptoError` — never a wrong answer.

Tags: ``T`` truncates the OPRF output to ``ceil((40 + log2(3 |R| |S|)) / 8)`` bytes (at least
8, at most 16; 11 at 1M x 1M), so the probability that any non-matching sender value equals
any receiver value is at most 2^-40. If two of R's own values collide, R stops with an
error instead of guessing.

Common row order: ascending OPRF tag of the matched ids — pseudorandom, fixed by the job's
randomness, identical at both parties.

Security
--------
Semi-honest parties; AES modelled as a PRF, BLAKE2b as a random oracle, CDH on
edwards25519 (base OTs). Sizes are not hidden: each party learns the other's |set| (and S
learns m, a function of |R|). Only ``reveal="rows"`` is supported: the receiver always
learns which of its rows matched, so a size-only result is impossible here (use the ECDH
protocol for it).

* Receiver R: the intersection, as its rows in the common order. Sender values of ids not
  in R's set are OPRF outputs on inputs R did not query: pseudorandom (their code words
  differ from the bin's in >= 128 positions of the secret ``s``, see :mod:`privfin.crypto.ot`),
  and they arrive in a random order, so R learns nothing about S's other ids nor about
  which bin or hash function produced them.
* Sender S: if named in ``to``, exactly the intersection (its own rows, in the common
  order) from the returned positions; otherwise nothing beyond |R|: the base-OT messages are
  uniform group elements, the OT-extension columns are one-time padded by PRG outputs of
  seeds S did not choose, and the cuckoo seed is public randomness (conditioned only on
  R's insertion succeeding, an event of probability about 1 - 2^-40).
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from privfin.crypto.ot import (
    W,
    OprfReceiver,
    OprfSender,
    aes_ecb,
    base_ot_recv,
    base_ot_send,
    code_words,
    hash_each,
    hash_input,
    hash_rows_chunk,
)
from privfin.errors import ConfigError, CryptoError, ProtocolError
from privfin.psi._stream import Sender, pipeline, recv_stream, run_batched
from privfin.psi.ids import CleanIds, clean_ids
from privfin.psi.protocol import PsiParams, PsiResult, _finish_rows, _hello, _receivers, _secure_permutation
from privfin.transport.base import Channel, Kind

PROTO = "two-party/kkrt"
HASHES = 3
LOAD = 1.27
OT_BLOCK = 1 << 16  # bins per OT-extension message: a (512, 8192) uint8 array, 4 MiB
_MAX_SEEDS = 32
_MAX_ROUNDS = 2000


# -- hashing and cuckoo table ---------------------------------------------------------------------


def _domain(job_id: str, ctx: str) -> bytes:
    j, c = job_id.encode(), ctx.encode()
    return b"privfin/psi/kkrt/v1" + len(j).to_bytes(2, "little") + j + len(c).to_bytes(2, "little") + c


def digest_chunk(values: np.ndarray, dst: bytes) -> np.ndarray:
    """``d(x)`` = BLAKE2b-128(dst, x) of each id: ``(n, 16)`` uint8 (never sent)."""
    base = hashlib.blake2b(digest_size=16, person=b"privfin-kkrt-d1")
    base.update(len(dst).to_bytes(2, "little") + dst)
    return np.frombuffer(hash_each(base, values.tolist()), np.uint8).reshape(len(values), 16)


def table_size(n: int) -> int:
    """Cuckoo bins for ``n`` receiver ids: ``ceil(1.27 n) + 16`` rounded up to a multiple of 8."""
    m = math.ceil(LOAD * n) + 16
    return -(-m // 8) * 8


def cuckoo_positions(digests: np.ndarray, seed: bytes, m: int) -> np.ndarray:
    """The three candidate bins ``(n, 3)`` int64: 32-bit words of ``AES_seed(d(x))`` mod ``m``."""
    words = np.frombuffer(aes_ecb(seed, np.ascontiguousarray(digests).tobytes()), "<u4").reshape(-1, 4)
    return (words[:, :HASHES] % np.uint32(m)).astype(np.int64)


def cuckoo_insert(pos: np.ndarray, m: int, max_rounds: int = _MAX_ROUNDS) -> tuple[np.ndarray, np.ndarray] | None:
    """Place every item in one of its bins (parallel eviction walk).

    Returns ``(table, choice)``: ``table[b]`` the item in bin ``b`` or -1, ``choice[i]`` the
    hash index used by item ``i``; None if the walk did not settle within ``max_rounds``."""
    n = len(pos)
    table = np.full(m, -1, np.int64)
    choice = np.zeros(n, np.int64)
    pend = np.arange(n, dtype=np.int64)
    for _ in range(max_rounds):
        if pend.size == 0:
            return table, choice
        b = pos[pend, choice[pend]]
        ub, first = np.unique(b, return_index=True)
        old = table[ub]
        table[ub] = pend[first]
        lost = np.ones(len(pend), bool)
        lost[first] = False
        pend = np.concatenate([pend[lost], old[old >= 0]])
        choice[pend] = (choice[pend] + 1) % HASHES
    return (table, choice) if pend.size == 0 else None


def tag_bytes(n_recv: int, n_send: int) -> int:
    """Bytes of a truncated OPRF tag: false-match probability <= 2^-40 over all comparisons."""
    bits = 40 + math.ceil(math.log2(max(2, HASHES * n_recv * n_send)))
    return min(16, max(8, -(-bits // 8)))


def _words(tags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n, size = len(tags), tags.dtype.itemsize
    buf = np.zeros((n, 16), np.uint8)
    buf[:, :size] = tags.view(np.uint8).reshape(n, size)
    w = buf.view(">u8")
    return w[:, 0].astype(np.uint64), w[:, 1].astype(np.uint64)


class TagIndex:
    """Distinct reference tags, sorted once; :meth:`add` looks up a block of query tags as it
    arrives (so matching overlaps with receiving), :meth:`result` returns all matches."""

    def __init__(self, ref: np.ndarray) -> None:
        rh, rl = _words(ref)
        order = np.argsort(rh)
        if np.any(rh[order][1:] == rh[order][:-1]):  # equal first words (probability ~ n^2 / 2^65)
            order = np.lexsort((rl, rh))
        self._rh, self._rl, self._order = rh[order], rl[order], order
        if np.any((self._rh[1:] == self._rh[:-1]) & (self._rl[1:] == self._rl[:-1])):
            raise CryptoError("two of the receiver's OPRF tags collide (probability < 2^-40); run the job again")
        self._q: list[np.ndarray] = []
        self._r: list[np.ndarray] = []
        self._seen = 0

    def add(self, query: np.ndarray) -> None:
        """Look up the next block of query tags (positions continue across blocks)."""
        qh, ql = _words(query)
        qord = np.argsort(qh)  # sorted queries make the binary searches cache-friendly
        qh, ql = qh[qord], ql[qord]
        rh, rl = self._rh, self._rl
        lo = np.searchsorted(rh, qh, "left")
        hi = np.searchsorted(rh, qh, "right")
        one = np.flatnonzero(hi - lo == 1)
        ok = one[rl[lo[one]] == ql[one]]
        q, r = [ok], [lo[ok]]
        for i in np.flatnonzero(hi - lo > 1):  # equal first words: probability ~ n^2 / 2^65
            for j in range(lo[i], hi[i]):
                if rl[j] == ql[i]:
                    q.append(np.array([i]))
                    r.append(np.array([j]))
        self._q.append(qord[np.concatenate(q).astype(np.int64)] + self._seen)
        self._r.append(np.concatenate(r).astype(np.int64))
        self._seen += len(query)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(qpos, ridx)`` in ascending tag order: query ``qpos`` equals reference ``ridx``."""
        if not self._q:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        qp, rr = np.concatenate(self._q), np.concatenate(self._r)
        srt = np.argsort(rr)
        rr = rr[srt]
        if np.any(rr[1:] == rr[:-1]):
            raise CryptoError("two sender tags match one receiver tag (probability < 2^-40); run the job again")
        return qp[srt], self._order[rr]


def match(ref: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact matches of ``query`` tags among distinct ``ref`` tags: ``(qpos, ridx)`` as in :class:`TagIndex`."""
    index = TagIndex(ref)
    index.add(query)
    return index.result()


# -- protocol -------------------------------------------------------------------------------------------


def psi_kkrt(chan: Channel, ids: Any, params: PsiParams | None = None) -> PsiResult:
    """Two-party PSI as ``chan.party`` with the KKRT OPRF; same result type as :func:`~privfin.psi.protocol.psi`
    (which calls this for ``protocol`` "kkrt", or "auto" with two parties revealing rows; the
    role aliases ``psi_receiver`` / ``psi_sender`` apply too)."""
    params = params or PsiParams()
    if params.reveal != "rows":
        raise ConfigError("the KKRT protocol reveals rows to its receiver; use the ECDH protocol for size_only",
                          key="reveal")
    t0 = time.perf_counter()
    clean = clean_ids(ids, params.policy, party=chan.party)
    t_clean = time.perf_counter() - t0
    if len(chan.peers) != 1:
        raise ConfigError("the KKRT protocol is for exactly two parties", key="parties")
    peer = chan.peers[0]
    recv = _receivers(params, (chan.party, peer))
    receiver = min(recv)
    with chan.stage("psi/setup"):
        hello = _hello(chan, params, PROTO, None, {"n": len(clean)}, [peer])
        n_peer = hello[peer].get("n")
        if not isinstance(n_peer, int) or n_peer < 1:
            raise ProtocolError(f"'psi/hello' from '{peer}': bad set size")
    if chan.party == receiver:
        res = _receiver(chan, peer, clean, n_peer, params, peer in recv)
    else:
        res = _sender(chan, peer, clean, n_peer, params, chan.party in recv)
    res.timings["clean_s"] = t_clean
    res.timings["total_s"] = time.perf_counter() - t0
    return res


def _digests(clean: CleanIds, dst: bytes) -> np.ndarray:
    return run_batched(digest_chunk, clean.values, dst)


def _receiver(chan: Channel, peer: str, clean: CleanIds, n_peer: int, params: PsiParams,
              peer_learns: bool) -> PsiResult:
    timings: dict[str, float] = {}
    n = len(clean)
    t = time.perf_counter()
    with chan.stage("psi/kkrt-ot"):
        seeds0, seeds1 = base_ot_send(chan, peer, W, _domain(chan.job_id, "base-ot"), tag="psi/kkrt-base")
        code_key = chan.recv(peer, "psi/kkrt-code", expect=bytes)
        if len(code_key) != 16:
            raise ProtocolError(f"'psi/kkrt-code' from '{peer}' must be 16 bytes")
    timings["base_ot_s"] = time.perf_counter() - t

    t = time.perf_counter()
    dig = _digests(clean, _domain(chan.job_id, "digest"))
    m = table_size(n)
    for _ in range(_MAX_SEEDS):
        seed = os.urandom(16)
        placed = cuckoo_insert(cuckoo_positions(dig, seed, m), m)
        if placed is not None:
            break
    else:
        raise CryptoError(f"cuckoo hashing of {n} ids into {m} bins failed {_MAX_SEEDS} times")
    table, choice = placed
    occ = np.flatnonzero(table >= 0)
    items = table[occ]
    bin_dig = np.frombuffer(os.urandom(16 * m), np.uint8).reshape(m, 16).copy()  # dummies in empty bins
    bin_dig[occ] = dig[items]
    bin_tw = np.zeros(m, np.int64)
    bin_tw[occ] = choice[items]
    timings["cuckoo_s"] = time.perf_counter() - t

    t = time.perf_counter()
    rx = OprfReceiver(seeds0, seeds1)
    own_rows: list[np.ndarray] = []
    sender = Sender(chan)
    try:
        with chan.stage("psi/kkrt-extend"):
            chan.send(peer, "psi/kkrt-cuckoo", {"seed": seed, "m": m}, kind=Kind.PLAINTEXT)
            for s in range(0, m, OT_BLOCK):
                e = min(m, s + OT_BLOCK)
                u, rows = rx.step(code_words(code_key, bin_dig[s:e], bin_tw[s:e]))
                sender.send(peer, "psi/kkrt-u", u, Kind.CIPHERTEXT)
                sel = occ[(occ >= s) & (occ < e)]
                own_rows.append(hash_input(sel, rows[sel - s]))
            sender.flush()
    finally:
        sender.close()
    timings["extend_s"] = time.perf_counter() - t

    t = time.perf_counter()
    size_b = tag_bytes(n, n_peer)
    hdst = _domain(chan.job_id, "oprf")
    own = run_batched(hash_rows_chunk, np.concatenate(own_rows), size_b, hdst)
    del own_rows
    timings["own_tags_s"] = time.perf_counter() - t

    t = time.perf_counter()
    index = TagIndex(own)
    with chan.stage("psi/match"):
        for block in recv_stream(chan, peer, "psi/kkrt-tags", HASHES * n_peer, _tag_check(size_b)):
            index.add(block)
    qpos, ridx = index.result()
    indices = clean.rows[items[ridx]]
    timings["match_s"] = time.perf_counter() - t
    if peer_learns:
        with chan.stage("psi/result"):
            chan.send(peer, "psi/kkrt-result", {"size": len(qpos)}, kind=Kind.PLAINTEXT)
            for s in range(0, len(qpos), params.block):
                chan.send(peer, "psi/kkrt-result", qpos[s:s + params.block], kind=Kind.PLAINTEXT)
    _finish_rows(chan, params, indices)
    return PsiResult(chan.party, len(indices), indices, clean.report, {peer: n_peer}, timings)


def _tag_check(size_b: int) -> Any:
    def check(obj: Any, tag: str, frm: str) -> np.ndarray:
        if not isinstance(obj, np.ndarray) or obj.dtype != np.dtype(f"S{size_b}") or obj.ndim != 1:
            raise ProtocolError(f"'{tag}' from '{frm}': expected a 1-d S{size_b} array")
        return obj
    return check


def _positions_check(obj: Any, tag: str, frm: str) -> np.ndarray:
    if not isinstance(obj, np.ndarray) or obj.dtype != np.int64 or obj.ndim != 1:
        raise ProtocolError(f"'{tag}' from '{frm}': expected a 1-d int64 array")
    return obj


def _sender(chan: Channel, peer: str, clean: CleanIds, n_peer: int, params: PsiParams, me_learns: bool) -> PsiResult:
    timings: dict[str, float] = {}
    n = len(clean)
    t = time.perf_counter()
    with chan.stage("psi/kkrt-ot"):
        bits = np.unpackbits(np.frombuffer(os.urandom(W // 8), np.uint8), bitorder="little").astype(bool)
        seeds = base_ot_recv(chan, peer, bits, _domain(chan.job_id, "base-ot"), tag="psi/kkrt-base")
        code_key = os.urandom(16)
        chan.send(peer, "psi/kkrt-code", code_key, kind=Kind.PLAINTEXT)
    tx = OprfSender(bits, seeds)
    timings["base_ot_s"] = time.perf_counter() - t

    t = time.perf_counter()
    dig = _digests(clean, _domain(chan.job_id, "digest"))
    m = table_size(n_peer)
    with chan.stage("psi/kkrt-extend"):
        msg = chan.recv(peer, "psi/kkrt-cuckoo", expect=dict)
        seed = msg.get("seed")
        if not isinstance(seed, bytes) or len(seed) != 16 or msg.get("m") != m:
            raise ProtocolError(f"'psi/kkrt-cuckoo' from '{peer}' is malformed or has the wrong table size")
        pos = cuckoo_positions(dig, seed, m)
        q = np.empty((m, W // 8), np.uint8)
        for s in range(0, m, OT_BLOCK):
            e = min(m, s + OT_BLOCK)
            u = chan.recv(peer, "psi/kkrt-u")
            if not isinstance(u, np.ndarray) or u.shape != (W, (e - s) // 8):
                raise ProtocolError(f"'psi/kkrt-u' from '{peer}': expected a ({W}, {(e - s) // 8}) array")
            q[s:e] = tx.step(u)
    timings["extend_s"] = time.perf_counter() - t

    t = time.perf_counter()
    total = HASHES * n
    perm = _secure_permutation(total)  # sent position -> (id, hash index) = divmod(perm, 3)
    size_b = tag_bytes(n_peer, n)
    hdst = _domain(chan.job_id, "oprf")

    def blocks() -> Iterator[np.ndarray]:
        for s in range(0, total, params.block):
            item, k = np.divmod(perm[s:s + params.block], HASHES)
            b = pos[item, k]
            yield hash_input(b, tx.encode(q[b], code_words(code_key, dig[item], k)))

    sender = Sender(chan)
    try:
        with chan.stage("psi/kkrt-tags"):
            for tags in pipeline(hash_rows_chunk, blocks(), size_b, hdst):
                sender.send(peer, "psi/kkrt-tags", tags, Kind.CIPHERTEXT)
            sender.flush()
    finally:
        sender.close()
    del q
    timings["tags_s"] = time.perf_counter() - t

    size: int | None = None
    indices: np.ndarray | None = None
    if me_learns:
        t = time.perf_counter()
        with chan.stage("psi/result"):
            head = chan.recv(peer, "psi/kkrt-result", expect=dict)
            size = head.get("size")
            if not isinstance(size, int) or not 0 <= size <= min(n, n_peer):
                raise ProtocolError(f"'psi/kkrt-result' from '{peer}': bad size")
            got = [np.empty(0, np.int64), *recv_stream(chan, peer, "psi/kkrt-result", size, _positions_check)]
        sent = np.concatenate(got)
        if len(sent) and (sent.min() < 0 or sent.max() >= total):
            raise ProtocolError(f"'psi/kkrt-result' from '{peer}' names positions that were not sent")
        item = perm[sent] // HASHES
        if len(item) > 1 and np.any(np.diff(np.sort(item)) == 0):
            raise ProtocolError(f"'psi/kkrt-result' from '{peer}' names one id twice")
        indices = clean.rows[item]
        _finish_rows(chan, params, indices)
        timings["result_s"] = time.perf_counter() - t
    return PsiResult(chan.party, size, indices, clean.report, {peer: n_peer}, timings)


__all__ = ["psi_kkrt", "table_size", "tag_bytes", "cuckoo_positions",
           "cuckoo_insert", "match", "TagIndex"]
