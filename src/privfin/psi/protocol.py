"""ECDH private set intersection: two-party and multi-party role functions.

Every party calls :func:`psi` (or a role alias) with its own channel, its own ids and the
same :class:`PsiParams`; with two parties the symmetric two-party protocol runs, with three
or more the leader-based multi-party protocol. Curve details and the collision bound are in
:mod:`privfin.psi.ecdh`; id cleaning in :mod:`privfin.psi.ids`.

Two-party protocol (parties A, B; ``H`` = hash to curve with per-job domain separation,
``a``, ``b`` fresh per-job secret scalars, ``T`` = 128-bit truncated hash)::

    A -> B  psi/hello    parameters digest and |A|                          plaintext
    A -> B  psi/blinded  H(x)^a for x in A, in a secret random order       ciphertext
    B -> A  psi/blinded  H(y)^b for y in B, in a secret random order       ciphertext
    B -> A  psi/tags     T(H(x)^ab) in A's order (rows) or sorted (size)   ciphertext, only if A learns
    A -> B  psi/tags     T(H(y)^ba) likewise                               ciphertext, only if B learns

A party that learns the result matches ``T(H(x)^ab)`` of its rows against the tags it
computed for the peer's values. The common row order is ascending ``T`` of the doubly
blinded value: random, and identical at both parties.

Multi-party protocol (leader ``L`` with set ``X``, followers ``F_1..F_m``, m >= 2): an
oblivious PRF plus an oblivious key-value store (OKVS) carrying XOR zero-shares, in the
style of Kolesnikov et al. (CCS 2017) with the OT-based OPRF replaced by a DH OPRF::

    F_i <-> F_j  psi/zs-key     a random key k_ij per follower pair          plaintext (between followers only)
    L -> F_i     psi/query      H(x)^c for x in X (secret order), one c      ciphertext
    F_i -> L     psi/eval       (H(x)^c)^k_i in the same order               ciphertext
    L            unblinds with c^-1 (mod l): K_i(x) = H(x)^k_i for its own x
    F_i -> L     psi/okvs       OKVS_i mapping K_i(y) -> s_i(y) for y in F_i's set, ciphertext
                                s_i(y) = XOR_{j != i} PRF(k_ij, y)   (XOR over all i is 0)
    L            x is in every set  <=>  XOR_i Decode(OKVS_i, K_i(x)) == 0
    L -> F_i     psi/result     T(K_i(x)) for x in the intersection, in the common order (rows),
                                or the size (size_only), only to named followers     plaintext / aggregate

In ``size_only`` mode the followers return ``psi/eval`` permuted by one permutation they
agree on (``psi/shuffle-seed`` between followers), so the leader can count but cannot tell
which of its rows matched.

Security
--------
Semi-honest parties; H is modelled as a random oracle; DDH on Curve25519's prime-order
subgroup; scalars and permutations from the OS CSPRNG. Sizes of the cleaned id sets are
not hidden (two-party: each party learns the other's |set|; multi-party: followers learn
the leader's |X|, the leader learns each follower's set size from its OKVS).

Two-party, what each party learns:

* a party named in ``to`` with ``reveal="rows"``: the intersection, as its own row
  indices in the common order (and the intersection size); nothing about the peer's ids
  outside the intersection (their doubly blinded tags are pseudorandom);
* a party named in ``to`` with ``reveal="size_only"``: the intersection size only (the
  tags of its own values come back sorted, unlinkable to its rows);
* a party not named in ``to``: the peer's set size only; it receives no tags at all.

Multi-party, what each party learns (assumption: the leader colludes with no follower;
followers may collude among themselves):

* the leader: with ``reveal="rows"`` the intersection of all sets as its own rows; with
  ``"size_only"`` only its size. It does not learn any pairwise or partial intersection:
  for x outside some follower's set, the decoded OKVS value is pseudorandom, and for x in
  a follower's set the share s_i(x) is masked by PRF keys only followers hold. The leader
  therefore always learns what the protocol reveals and must be named in ``to``.
* a follower named in ``to``: its own rows in the intersection in the common order
  (``"rows"``), or the size (``"size_only"``); otherwise nothing beyond |X|. Followers see
  only blinded leader values ``H(x)^c`` and never see another follower's or the leader's
  matching data.
* If the leader colluded with follower j, they could recompute s_i and learn |X ∩ F_i| and
  which rows (pairwise intersections) — hence the non-collusion assumption.

Ledger kinds: blinded points, tags, OPRF evaluations and OKVS tables are ``ciphertext``
(under a key the receiver lacks); hello messages, follower-pair keys, shuffle seeds and
result row tags are ``plaintext``; a revealed size is ``aggregate``.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from privfin.errors import ConfigError, CryptoError, ProtocolError
from privfin.psi import ecdh
from privfin.psi._stream import (
    TAG_DTYPE,
    Sender,
    check_points,
    check_tags,
    member,
    pipeline,
    recv_stream,
    run_batched,
)
from privfin.psi.ids import CleanIds, EmptyIntersectionError, HygieneReport, IdPolicy, clean_ids
from privfin.runtime.executor import get_executor
from privfin.transport.base import Channel, Kind

PROTOCOL_VERSION = 1


@dataclass(frozen=True)
class PsiParams:
    """Parameters every party of one PSI job passes identically.

    ``reveal``: "rows" (aligned row indices) or "size_only"; ``to``: the parties that learn
    the result (None = every party); ``leader``: the combining party of the multi-party
    protocol (default: first party name in sorted order); ``policy``: id cleaning;
    ``block``: ids per streamed message / executor batch; ``on_empty``: "error" raises
    :class:`EmptyIntersectionError` at a party learning rows when the intersection is empty;
    ``protocol``: "ecdh" (this module), "kkrt" (two parties revealing rows only, OT-based,
    :mod:`privfin.psi.kkrt`) or "auto" (KKRT where it applies, ECDH otherwise).
    """

    reveal: Literal["rows", "size_only"] = "rows"
    to: tuple[str, ...] | None = None
    leader: str | None = None
    policy: IdPolicy = field(default_factory=IdPolicy)
    block: int = 1 << 17
    on_empty: Literal["error", "allow"] = "error"
    protocol: Literal["auto", "ecdh", "kkrt"] = "auto"

    def __post_init__(self) -> None:
        if self.protocol not in ("auto", "ecdh", "kkrt"):
            raise ConfigError("protocol must be 'auto', 'ecdh' or 'kkrt'", key="protocol")
        if self.reveal not in ("rows", "size_only"):
            raise ConfigError("reveal must be 'rows' or 'size_only'", key="reveal")
        if self.on_empty not in ("error", "allow"):
            raise ConfigError("on_empty must be 'error' or 'allow'", key="on_empty")
        if self.block < 1:
            raise ConfigError("block must be positive", key="block")
        if self.to is not None:
            if isinstance(self.to, str) or not self.to:
                raise ConfigError("'to' must name at least one party (a tuple of names), or be None for all",
                                  key="to")
            object.__setattr__(self, "to", tuple(sorted(set(self.to))))


@dataclass
class PsiResult:
    """One party's output.

    ``size``: intersection size, or None if this party learns nothing. ``indices``: positions
    in this party's *input* (before cleaning) of its intersection rows, in the order shared
    by every party; None unless rows were revealed to this party.
    """

    party: str
    size: int | None
    indices: np.ndarray | None
    hygiene: HygieneReport
    peer_sizes: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


# -- helpers ------------------------------------------------------------------------------


def _secure_permutation(n: int) -> np.ndarray:
    """A uniformly random permutation of ``range(n)`` from the OS CSPRNG."""
    if n <= 1:
        return np.arange(n, dtype=np.int64)
    keys = np.frombuffer(os.urandom(8 * n), np.uint64)
    return np.argsort(keys, kind="stable").astype(np.int64)


def _seeded_permutation(seed: bytes, n: int) -> np.ndarray:
    """A permutation derived from a shared 32-byte secret seed (BLAKE2b in counter mode)."""
    if n <= 1:
        return np.arange(n, dtype=np.int64)
    out = bytearray()
    ctr = 0
    while len(out) < 8 * n:
        out += hashlib.blake2b(ctr.to_bytes(8, "little"), key=seed, digest_size=64).digest()
        ctr += 1
    keys = np.frombuffer(bytes(out[: 8 * n]), np.uint64)
    return np.argsort(keys, kind="stable").astype(np.int64)


def _hello(chan: Channel, params: PsiParams, proto: str, leader: str | None, extra: dict[str, Any],
           to: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Exchange parameter digests; every party must run the same job configuration."""
    mine = {"v": PROTOCOL_VERSION, "reveal": params.reveal,
            "to": list(params.to) if params.to is not None else None, "leader": leader,
            "policy": params.policy.to_wire(), "proto": proto, "backend_compat": "x25519-rfc7748"}
    peers = list(to)
    chan.broadcast("psi/hello", {**mine, **extra}, kind=Kind.PLAINTEXT, to=peers)
    got = chan.gather("psi/hello", frm=peers, expect=dict)
    for peer, theirs in got.items():
        for k, v in mine.items():
            if theirs.get(k) != v:
                raise ProtocolError(f"PSI parameter '{k}' differs between '{chan.party}' and '{peer}'")
    return got


def _receivers(params: PsiParams, parties: Iterable[str]) -> set[str]:
    parties = set(parties)
    if params.to is None:
        return parties
    unknown = set(params.to) - parties
    if unknown:
        raise ConfigError(f"'to' names parties not in this job: {sorted(unknown)}", key="to")
    return set(params.to)


def _finish_rows(chan: Channel, params: PsiParams, indices: np.ndarray) -> None:
    if len(indices) == 0 and params.on_empty == "error":
        raise EmptyIntersectionError(f"{chan.party}: the intersection is empty (no shared ids after normalization); "
                                     "set on_empty='allow' to accept an empty result")


# -- entry points -----------------------------------------------------------------------------


def protocol_for(params: PsiParams, n_parties: int) -> Literal["ecdh", "kkrt"]:
    """The protocol a job runs: ``params.protocol``, with "auto" = KKRT for two parties
    revealing rows (about 10x less CPU than ECDH at 1M ids), ECDH otherwise."""
    if params.protocol == "ecdh" or (params.protocol == "auto" and (n_parties != 2 or params.reveal != "rows")):
        return "ecdh"
    return "kkrt"


def psi(chan: Channel, ids: Any, params: PsiParams | None = None) -> PsiResult:
    """Run PSI as ``chan.party``: two-party protocol for 2 parties (KKRT or ECDH, see
    :func:`protocol_for`), leader-based ECDH for >= 3."""
    params = params or PsiParams()
    if protocol_for(params, len(chan.peers) + 1) == "kkrt":
        from privfin.psi.kkrt import psi_kkrt  # kkrt builds on this module's helpers

        return psi_kkrt(chan, ids, params)
    t0 = time.perf_counter()
    clean = clean_ids(ids, params.policy, party=chan.party)
    t_clean = time.perf_counter() - t0
    if len(chan.peers) == 0:
        raise ConfigError("PSI needs at least one peer", key="parties")
    if len(chan.peers) == 1:
        res = _two_party(chan, clean, params)
    else:
        res = _multi_party(chan, clean, params)
    res.timings["clean_s"] = t_clean
    res.timings["total_s"] = time.perf_counter() - t0
    return res


def psi_receiver(chan: Channel, ids: Any, params: PsiParams | None = None) -> PsiResult:
    """Two-party role that learns the result (``to`` defaults to this party only)."""
    params = params or PsiParams()
    if params.to is None:
        params = replace(params, to=(chan.party,))
    return psi(chan, ids, params)


def psi_sender(chan: Channel, ids: Any, params: PsiParams | None = None) -> PsiResult:
    """Two-party role that helps but learns nothing (``to`` defaults to the peer only)."""
    params = params or PsiParams()
    if params.to is None:
        params = replace(params, to=tuple(chan.peers))
    return psi(chan, ids, params)


def psi_leader(chan: Channel, ids: Any, params: PsiParams | None = None) -> PsiResult:
    """Multi-party role that combines (``leader`` set to this party)."""
    return psi(chan, ids, replace(params or PsiParams(), leader=chan.party))


def psi_follower(chan: Channel, ids: Any, params: PsiParams) -> PsiResult:
    """Multi-party follower role; ``params.leader`` must name the leader."""
    if params.leader is None:
        raise ConfigError("a follower needs params.leader", key="leader")
    return psi(chan, ids, params)


# -- two-party ----------------------------------------------------------------------------------


def _two_party(chan: Channel, clean: CleanIds, params: PsiParams) -> PsiResult:
    peer = chan.peers[0]
    recv = _receivers(params, (chan.party, peer))
    me_learns, peer_learns = chan.party in recv, peer in recv
    rows = params.reveal == "rows"
    timings: dict[str, float] = {}
    n = len(clean)
    with chan.stage("psi/setup"):
        hello = _hello(chan, params, "two-party", None, {"n": n}, [peer])
        n_peer = hello[peer].get("n")
        if not isinstance(n_peer, int) or n_peer < 1:
            raise ProtocolError(f"'psi/hello' from '{peer}': bad set size")
    dst = ecdh.domain(chan.job_id, "two-party")
    tdst = ecdh.domain(chan.job_id, "two-party/tag")
    key = ecdh.new_scalar()
    perm = _secure_permutation(n)
    block = params.block

    sender = Sender(chan)
    try:
        t = time.perf_counter()
        with chan.stage("psi/blind-own"):
            own_blocks = (clean.values[perm[s:s + block]] for s in range(0, n, block))
            for pts in pipeline(ecdh.hash_and_blind_chunk, own_blocks, key, dst):
                sender.send(peer, "psi/blinded", pts, Kind.CIPHERTEXT)
            sender.flush()  # the stage is read when the message is sent: finish inside it
        timings["blind_own_s"] = time.perf_counter() - t

        t = time.perf_counter()
        peer_tags: list[np.ndarray] = []
        with chan.stage("psi/blind-peer"):
            incoming = recv_stream(chan, peer, "psi/blinded", n_peer, check_points)
            for tags in pipeline(ecdh.blind_and_tag_chunk, incoming, key, tdst):
                if peer_learns and rows:
                    sender.send(peer, "psi/tags", tags, Kind.CIPHERTEXT)
                if me_learns or (peer_learns and not rows):
                    peer_tags.append(tags)
            all_peer = np.concatenate(peer_tags) if peer_tags else np.empty(0, TAG_DTYPE)
            del peer_tags
            if peer_learns and not rows:
                all_peer = np.sort(all_peer)  # sorted order carries nothing about the peer's row order
                for s in range(0, len(all_peer), block):
                    sender.send(peer, "psi/tags", all_peer[s:s + block], Kind.CIPHERTEXT)
            sender.flush()
        timings["blind_peer_s"] = time.perf_counter() - t
    finally:
        sender.close()

    size: int | None = None
    indices: np.ndarray | None = None
    if me_learns:
        t = time.perf_counter()
        with chan.stage("psi/match"):
            mine = np.concatenate(list(recv_stream(chan, peer, "psi/tags", n, check_tags)))
        ref = all_peer if (peer_learns and not rows) else np.sort(all_peer)  # sorted already if sent
        hit = member(mine, ref)
        size = int(hit.sum())
        if rows:
            pos = np.flatnonzero(hit)
            order = np.argsort(mine[pos], kind="stable")
            indices = clean.rows[perm[pos[order]]]
            _finish_rows(chan, params, indices)
        timings["match_s"] = time.perf_counter() - t
    return PsiResult(chan.party, size, indices, clean.report, {peer: n_peer}, timings)


# -- OKVS (3-hash XOR store, peeling construction) ----------------------------------------------
#
# encode() builds a table T of m ~ 1.3 n random 128-bit cells such that for each key,
# T[h0] ^ T[h1] ^ T[h2] = value (one position per third of the table). Cells not fixed by a
# key stay uniformly random, so with pseudorandom values the table is pseudorandom and
# decoding at an absent key gives a pseudorandom value: the table hides which keys it holds.
# Peeling (as in XOR filters) fails with small probability; then a fresh public seed is used.

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)


def _okvs_segment(n: int) -> int:
    return -(-13 * n // 30) + 16


def okvs_table_size(n: int) -> int:
    """Cells of the OKVS for ``n`` keys (three segments of ``ceil(1.3 n / 3) + 16``)."""
    return 3 * _okvs_segment(n)


def _mix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + _GOLD
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def _okvs_positions(words: np.ndarray, seed: int, n_keys: int) -> np.ndarray:
    s = _okvs_segment(n_keys)
    seeds = _mix(np.array([seed, seed + 1, seed + 2], dtype=np.uint64))
    pos = (_mix(words ^ seeds) % np.uint64(s)).astype(np.int64)
    pos += np.arange(3, dtype=np.int64) * s
    return pos


def _okvs_peel(pos: np.ndarray, m: int) -> list[tuple[np.ndarray, np.ndarray]] | None:
    n = len(pos)
    count = np.zeros(m, np.int64)
    xk = np.zeros(m, np.int64)
    idx = np.arange(n, dtype=np.int64)
    for j in range(3):
        np.add.at(count, pos[:, j], 1)
        np.bitwise_xor.at(xk, pos[:, j], idx)
    rounds: list[tuple[np.ndarray, np.ndarray]] = []
    removed = 0
    cand = np.flatnonzero(count == 1)
    while cand.size:
        keys, first = np.unique(xk[cand], return_index=True)
        cells = cand[first]
        rounds.append((keys, cells))
        removed += len(keys)
        p = pos[keys]
        for j in range(3):
            np.subtract.at(count, p[:, j], 1)
            np.bitwise_xor.at(xk, p[:, j], keys)
        touched = np.unique(p)
        cand = touched[count[touched] == 1]
    return rounds if removed == n else None


def okvs_encode(words: np.ndarray, values: np.ndarray, *, max_tries: int = 32) -> tuple[np.ndarray, int]:
    """Store ``values`` (``(n, 2)`` uint64) under key ``words`` (``(n, 3)`` uint64): ``(table, seed)``."""
    n = len(words)
    m = okvs_table_size(n)
    for _ in range(max_tries):
        seed = int.from_bytes(os.urandom(8), "little") >> 2
        pos = _okvs_positions(words, seed, n)
        rounds = _okvs_peel(pos, m)
        if rounds is None:
            continue
        table = np.frombuffer(os.urandom(16 * m), np.uint64).reshape(m, 2).copy()
        for keys, cells in reversed(rounds):
            p = pos[keys]
            cur = table[p[:, 0]] ^ table[p[:, 1]] ^ table[p[:, 2]]
            table[cells] ^= cur ^ values[keys]
        return table, seed
    raise CryptoError(f"OKVS encoding failed {max_tries} times for {n} keys")


def okvs_decode(table: np.ndarray, words: np.ndarray, seed: int, n_keys: int) -> np.ndarray:
    """Values under ``words`` (pseudorandom for keys that were not stored)."""
    if table.shape != (okvs_table_size(n_keys), 2):
        raise ProtocolError(f"OKVS table has shape {table.shape}, expected {(okvs_table_size(n_keys), 2)}")
    pos = _okvs_positions(words, seed, n_keys)
    return table[pos[:, 0]] ^ table[pos[:, 1]] ^ table[pos[:, 2]]


# -- multi-party ---------------------------------------------------------------------------------


def oprf_keys_chunk(points: np.ndarray, dst: bytes) -> tuple[np.ndarray, np.ndarray]:
    """From OPRF outputs K(x): (alignment tags ``S16``, OKVS key words ``(n, 3)`` uint64)."""
    base = hashlib.blake2b(digest_size=40, person=b"privfin-okvs-v1")
    base.update(dst)
    raw = points.tobytes()
    out = []
    for i in range(0, len(raw), ecdh.POINT_BYTES):
        h = base.copy()
        h.update(raw[i:i + ecdh.POINT_BYTES])
        out.append(h.digest())
    buf = np.frombuffer(b"".join(out), np.uint8).reshape(-1, 40)
    tags = buf[:, :16].copy().view(TAG_DTYPE).ravel()
    words = buf[:, 16:].copy().view(np.uint64).reshape(-1, 3)
    return tags, words


def _keys_of(points: np.ndarray, dst: bytes) -> tuple[np.ndarray, np.ndarray]:
    parts = get_executor().map_chunks(oprf_keys_chunk, points, dst, min_chunk=1 << 15)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def zero_share_chunk(items: np.ndarray, pair_keys: list[bytes], dst: bytes) -> np.ndarray:
    """XOR of ``PRF(k_ij, id)`` over this follower's pair keys: ``(n, 2)`` uint64."""
    acc = np.zeros((len(items), 2), np.uint64)
    vals = items.tolist()
    for k in pair_keys:
        base = hashlib.blake2b(digest_size=16, key=k, person=b"privfin-zshare1")
        base.update(dst)
        out = []
        for v in vals:
            h = base.copy()
            h.update(v)
            out.append(h.digest())
        acc ^= np.frombuffer(b"".join(out), np.uint64).reshape(-1, 2)
    return acc


def _multi_party(chan: Channel, clean: CleanIds, params: PsiParams) -> PsiResult:
    parties = sorted((chan.party, *chan.peers))
    leader = params.leader or parties[0]
    if leader not in parties:
        raise ConfigError(f"leader '{leader}' is not a party of this job", key="leader")
    recv = _receivers(params, parties)
    if leader not in recv:
        raise ConfigError("in the multi-party protocol the leader always learns what is revealed; name it in 'to'",
                          key="to")
    followers = [p for p in parties if p != leader]
    with chan.stage("psi/setup"):
        _hello(chan, params, "multi-party", leader, {}, chan.peers)
    if chan.party == leader:
        return _mp_leader(chan, clean, params, followers, recv)
    return _mp_follower(chan, clean, params, leader, followers, recv)


def _mp_leader(chan: Channel, clean: CleanIds, params: PsiParams, followers: list[str], recv: set[str]) -> PsiResult:
    timings: dict[str, float] = {}
    rows = params.reveal == "rows"
    n = len(clean)
    dst = ecdh.domain(chan.job_id, "multi-party")
    kdst = ecdh.domain(chan.job_id, "multi-party/okvs")
    c, d = ecdh.new_invertible_scalar()
    perm = _secure_permutation(n)
    block = params.block
    t = time.perf_counter()
    with chan.stage("psi/query"):
        chan.broadcast("psi/query-size", {"n": n}, kind=Kind.PLAINTEXT, to=followers)
        for s in range(0, n, block):
            q = run_batched(ecdh.hash_and_blind_chunk, clean.values[perm[s:s + block]], c, dst)
            chan.broadcast("psi/query", q, kind=Kind.CIPHERTEXT, to=followers)
    timings["query_s"] = time.perf_counter() - t

    t = time.perf_counter()
    acc = np.zeros((n, 2), np.uint64)
    first_tags: np.ndarray | None = None
    tags_by: dict[str, np.ndarray] = {}
    peer_sizes: dict[str, int] = {}
    for f in followers:
        with chan.stage("psi/evaluate"):
            kpts = [run_batched(ecdh.blind_chunk, r, d) for r in recv_stream(chan, f, "psi/eval", n, check_points)]
        tags, words = _keys_of(np.concatenate(kpts), kdst)
        with chan.stage("psi/okvs"):
            msg = chan.recv(f, "psi/okvs", expect=dict)
        try:
            table, seed, n_f = msg["table"], int(msg["seed"]), int(msg["n"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"'psi/okvs' from '{f}' is malformed") from exc
        if not isinstance(table, np.ndarray) or table.dtype != np.uint64:
            raise ProtocolError(f"'psi/okvs' from '{f}': table must be a uint64 array")
        peer_sizes[f] = n_f
        acc ^= okvs_decode(table, words, seed, n_f)
        if rows:
            tags_by[f] = tags
        if first_tags is None:
            first_tags = tags
    hit = ~(acc.any(axis=1))
    size = int(hit.sum())
    timings["combine_s"] = time.perf_counter() - t

    indices: np.ndarray | None = None
    with chan.stage("psi/result"):
        if rows:
            pos = np.flatnonzero(hit)
            assert first_tags is not None
            order = pos[np.argsort(first_tags[pos], kind="stable")]
            indices = clean.rows[perm[order]]
            for f in followers:
                if f in recv:
                    chan.send(f, "psi/result", {"tags": tags_by[f][order]}, kind=Kind.PLAINTEXT)
            _finish_rows(chan, params, indices)
        else:
            for f in followers:
                if f in recv:
                    chan.send(f, "psi/result", {"size": size}, kind=Kind.AGGREGATE)
    return PsiResult(chan.party, size, indices, clean.report, peer_sizes, timings)


def _mp_follower(chan: Channel, clean: CleanIds, params: PsiParams, leader: str, followers: list[str],
                 recv: set[str]) -> PsiResult:
    timings: dict[str, float] = {}
    rows = params.reveal == "rows"
    me = chan.party
    others = [f for f in followers if f != me]
    dst = ecdh.domain(chan.job_id, "multi-party")
    kdst = ecdh.domain(chan.job_id, "multi-party/okvs")
    zdst = ecdh.domain(chan.job_id, "multi-party/zero-share")
    key = ecdh.new_scalar()
    t = time.perf_counter()
    with chan.stage("psi/setup"):
        # pairwise zero-share keys: the follower with the smaller name picks k_ij
        pair_keys: list[bytes] = []
        for o in others:
            if me < o:
                k = os.urandom(32)
                chan.send(o, "psi/zs-key", k, kind=Kind.PLAINTEXT)
                pair_keys.append(k)
        for o in others:
            if o < me:
                k = chan.recv(o, "psi/zs-key", expect=bytes)
                if len(k) != 32:
                    raise ProtocolError(f"'psi/zs-key' from '{o}' must be 32 bytes")
                pair_keys.append(k)
        shuffle_seed = b""
        if not rows:
            if me == followers[0]:
                shuffle_seed = os.urandom(32)
                chan.broadcast("psi/shuffle-seed", shuffle_seed, kind=Kind.PLAINTEXT, to=others)
            else:
                shuffle_seed = chan.recv(followers[0], "psi/shuffle-seed", expect=bytes)
        n_leader = chan.recv(leader, "psi/query-size", expect=dict).get("n")
        if not isinstance(n_leader, int) or n_leader < 1:
            raise ProtocolError(f"'psi/query-size' from '{leader}': bad size")
    with chan.stage("psi/evaluate"):
        if rows:
            for q in recv_stream(chan, leader, "psi/query", n_leader, check_points):
                chan.send(leader, "psi/eval", run_batched(ecdh.blind_chunk, q, key), kind=Kind.CIPHERTEXT)
        else:  # one permutation shared by all followers hides which leader row matched
            q = np.concatenate(list(recv_stream(chan, leader, "psi/query", n_leader, check_points)))
            q = q[_seeded_permutation(shuffle_seed, n_leader)]
            for s in range(0, n_leader, params.block):
                chan.send(leader, "psi/eval", run_batched(ecdh.blind_chunk, q[s:s + params.block], key),
                          kind=Kind.CIPHERTEXT)
    timings["evaluate_s"] = time.perf_counter() - t

    t = time.perf_counter()
    n = len(clean)
    own = np.concatenate([run_batched(ecdh.hash_and_blind_chunk, clean.values[s:s + params.block], key, dst)
                          for s in range(0, n, params.block)])
    tags, words = _keys_of(own, kdst)
    del own
    if pair_keys:
        parts = get_executor().map_chunks(zero_share_chunk, clean.values, pair_keys, zdst, min_chunk=1 << 15)
        values = np.concatenate(parts)
    else:
        values = np.zeros((n, 2), np.uint64)
    table, seed = okvs_encode(words, values)
    with chan.stage("psi/okvs"):
        chan.send(leader, "psi/okvs", {"table": table, "seed": seed, "n": n}, kind=Kind.CIPHERTEXT)
    timings["okvs_s"] = time.perf_counter() - t

    size: int | None = None
    indices: np.ndarray | None = None
    if me in recv:
        with chan.stage("psi/result"):
            res = chan.recv(leader, "psi/result", expect=dict)
        if rows:
            got = check_tags(res.get("tags"), "psi/result", leader)
            srt = np.argsort(tags, kind="stable")
            st = tags[srt]
            pos = np.searchsorted(st, got)
            pos[pos >= len(st)] = 0
            if len(got) and not (st[pos] == got).all():
                raise ProtocolError(f"'psi/result' from '{leader}' names rows this party does not hold")
            indices = clean.rows[srt[pos]]
            size = len(indices)
            _finish_rows(chan, params, indices)
        else:
            s = res.get("size")
            if not isinstance(s, int) or s < 0:
                raise ProtocolError(f"'psi/result' from '{leader}': bad size")
            size = s
    return PsiResult(me, size, indices, clean.report, {leader: n_leader}, timings)


__all__ = ["PsiParams", "PsiResult", "protocol_for", "psi", "psi_sender", "psi_receiver", "psi_leader", "psi_follower",
           "okvs_encode", "okvs_decode", "okvs_table_size"]
