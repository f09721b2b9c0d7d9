"""KKRT (OT-based) two-party PSI over the in-memory transport: correctness, order, roles, leaks."""

from __future__ import annotations

import random

import numpy as np
import pytest

from privfin.errors import ConfigError, CryptoError
from privfin.psi import EmptyInputError, EmptyIntersectionError, IdPolicy, PsiParams, psi_receiver, psi_sender
from privfin.psi.kkrt import (
    TagIndex,
    cuckoo_insert,
    cuckoo_positions,
    digest_chunk,
    _domain,
    match,
    table_size,
    tag_bytes,
)
from privfin.runtime.executor import LocalProcessExecutor, set_executor
from privfin.transport.base import Kind
from privfin.transport.memory import MemoryNetwork, run_parties
from psi_idgen import credit_code, numeric18, overlapping, resident_id
from test_protocol import _unkeyed_hashes, rows_of
from test_protocol import run as run_protocol

GENERATORS = {"numeric18": numeric18, "resident_id": resident_id, "credit_code": credit_code}


def run(sets: dict[str, list[str]], params: PsiParams | None = None, job: str = "job-kkrt",
        roles: dict | None = None) -> tuple[MemoryNetwork, dict]:
    return run_protocol(sets, params, job, roles, protocol="kkrt")


def check_both(sets, out):
    a, b = sets
    truth = set(sets[a]) & set(sets[b])
    ra, rb = rows_of(sets, out, a), rows_of(sets, out, b)
    assert set(ra) == truth and len(ra) == len(truth)
    assert ra == rb  # identical row order at both parties
    assert out[a].size == out[b].size == len(truth)
    return ra


# -- correctness and order -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_equals_set_intersection_same_order(kind):
    rng = random.Random(hash(kind) % 1000)
    a, b = overlapping(GENERATORS[kind], rng, (400, 300), common=120)
    sets = {"bank": a, "gov": b}
    _, out = run(sets, PsiParams(block=64))  # several streamed blocks
    check_both(sets, out)
    assert out["bank"].peer_sizes == {"gov": 300} and out["gov"].peer_sizes == {"bank": 400}


@pytest.mark.parametrize("sizes,common", [((1, 1), 1), ((1, 50), 1), ((50, 1), 1), ((300, 300), 300),
                                          ((20, 3000), 15), ((3000, 20), 15)])
def test_sizes_identical_unbalanced_single(sizes, common):
    rng = random.Random(sum(sizes) + common)
    a, b = overlapping(numeric18, rng, sizes, common=common)
    sets = {"a": a, "b": b}
    _, out = run(sets, PsiParams(on_empty="allow"))
    check_both(sets, out)


def test_random_byte_strings_and_ints():
    rng = random.Random(5)
    pool = list({rng.randrange(1, 10**12) for _ in range(3000)})
    a, b = pool[:1500], pool[1000:2600]
    sets = {"x": a, "y": b}
    _, out = run(sets)
    check_both(sets, out)


def test_disjoint_is_a_clear_error_or_allowed():
    rng = random.Random(6)
    pool = sorted({numeric18(rng) for _ in range(200)})
    a, b = pool[:100], pool[100:180]
    with pytest.raises(EmptyIntersectionError):
        run({"a": a, "b": b})
    _, out = run({"a": a, "b": b}, PsiParams(on_empty="allow"))
    assert out["a"].size == out["b"].size == 0 and len(out["a"].indices) == len(out["b"].indices) == 0


def test_empty_input_is_a_clear_error():
    with pytest.raises(EmptyInputError):
        run({"a": [], "b": ["110105199001011234"]})


def test_order_is_not_id_order_and_differs_between_jobs():
    rng = random.Random(3)
    a, b = overlapping(numeric18, rng, (200, 200), common=100)
    sets = {"a": a, "b": b}
    _, o1 = run(sets, job="job-1")
    _, o2 = run(sets, job="job-2")
    r1, r2 = rows_of(sets, o1, "a"), rows_of(sets, o2, "a")
    assert set(r1) == set(r2) and r1 != r2 and r1 != sorted(r1)


def test_input_positions_survive_duplicates_and_blanks():
    a = ["100000000000000001", " ", "100000000000000002", "100000000000000003", "100000000000000002"]
    b = ["100000000000000003", "100000000000000002", "999999999999999999"]
    sets = {"a": a, "b": b}
    _, out = run(sets, PsiParams(policy=IdPolicy(duplicates="dedupe", on_invalid="skip")))
    assert rows_of(sets, out, "a") == rows_of(sets, out, "b")
    assert set(rows_of(sets, out, "a")) == {"100000000000000002", "100000000000000003"}


def test_with_process_pool():
    old = set_executor(LocalProcessExecutor(2))
    try:
        rng = random.Random(11)
        a, b = overlapping(numeric18, rng, (6000, 5000), common=4000)
        sets = {"a": a, "b": b}
        _, out = run(sets, PsiParams(block=4096))
        check_both(sets, out)
    finally:
        ex = set_executor(old) if old is not None else None
        if ex is not None:
            ex.shutdown()


# -- roles and what each party learns ------------------------------------------------------------------


def test_only_the_named_party_learns():
    rng = random.Random(7)
    a, b = overlapping(numeric18, rng, (120, 90), common=40)
    sets = {"bank": a, "gov": b}
    for to in ("bank", "gov"):
        net, out = run(sets, PsiParams(to=(to,)))
        other = "gov" if to == "bank" else "bank"
        assert set(rows_of(sets, out, to)) == set(a) & set(b)
        assert out[other].size is None and out[other].indices is None
        # the helper gets no result message at all
        assert not [e for e in net.ledgers[other] if e.tag == "psi/kkrt-result"]


def test_role_aliases():
    rng = random.Random(8)
    a, b = overlapping(numeric18, rng, (60, 70), common=25)
    sets = {"r": a, "s": b}
    _, out = run(sets, roles={"r": psi_receiver, "s": psi_sender})
    assert set(rows_of(sets, out, "r")) == set(a) & set(b) and out["s"].indices is None


def test_size_only_is_refused():
    with pytest.raises(ConfigError, match="size_only"):
        run({"a": ["1"], "b": ["1"]}, PsiParams(reveal="size_only"))


def test_ledger_kinds_match_the_security_section():
    rng = random.Random(12)
    a, b = overlapping(numeric18, rng, (50, 50), common=20)
    net, _ = run({"a": a, "b": b})  # "a" is the receiver (first name)
    kinds = {p: {(e.tag, e.kind) for e in net.ledgers[p]} for p in ("a", "b")}
    assert kinds["b"] == {("psi/hello", Kind.PLAINTEXT), ("psi/kkrt-base/A", Kind.PLAINTEXT),
                          ("psi/kkrt-cuckoo", Kind.PLAINTEXT), ("psi/kkrt-u", Kind.CIPHERTEXT),
                          ("psi/kkrt-result", Kind.PLAINTEXT)}
    assert kinds["a"] == {("psi/hello", Kind.PLAINTEXT), ("psi/kkrt-base/B", Kind.CIPHERTEXT),
                          ("psi/kkrt-code", Kind.PLAINTEXT), ("psi/kkrt-tags", Kind.CIPHERTEXT)}


def test_transcript_has_no_id_and_no_unkeyed_hash():
    rng = random.Random(13)
    sets = dict(zip(["bank", "gov"], overlapping(resident_id, rng, (60, 60), common=20)))
    net, _ = run(sets, job="job-leak")
    wire = b"".join(r.wire for r in net.transcript)
    ids = sorted(set().union(*sets.values()))
    needles = _unkeyed_hashes(ids, "job-leak")
    dig = digest_chunk(np.array([x.encode() for x in ids]), _domain("job-leak", "digest"))
    needles += [row.tobytes() for row in dig]  # the per-job id digest d(x) stays home too
    for needle in needles:
        assert needle not in wire


def test_sender_tags_are_fresh_per_job_and_disjoint_sets_match_nothing():
    """Same sets, another job: none of the sender's tags repeat (fresh keys, OTs and code)."""
    rng = random.Random(14)
    pool = sorted({numeric18(rng) for _ in range(400)})
    a, b = pool[:200], pool[200:400]
    net, out = run({"a": a, "b": b}, PsiParams(on_empty="allow"))
    tags = [r.wire for r in net.transcript if r.envelope.tag == "psi/kkrt-tags"]
    assert tags and out["a"].size == 0
    # the same sets under another job: the sender's tags change completely
    net2, _ = run({"a": a, "b": b}, PsiParams(on_empty="allow"), job="job-other")
    tags2 = b"".join(r.wire for r in net2.transcript if r.envelope.tag == "psi/kkrt-tags")
    k = tag_bytes(200, 200)
    body = tags[0][-k * 100:]
    assert not any(body[i:i + k] in tags2 for i in range(0, len(body), k))


# -- building blocks -------------------------------------------------------------------------------------


def test_cuckoo_places_every_item_once_or_reports_failure():
    rng = np.random.default_rng(1)
    n = 5000
    d = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    m = table_size(n)
    pos = cuckoo_positions(d, b"k" * 16, m)
    assert pos.shape == (n, 3) and pos.min() >= 0 and pos.max() < m
    table, choice = cuckoo_insert(pos, m)
    occ = table[table >= 0]
    assert sorted(occ.tolist()) == list(range(n))
    bins = np.flatnonzero(table >= 0)
    assert np.array_equal(pos[table[bins], choice[table[bins]]], bins)
    small = cuckoo_positions(d, b"k" * 16, n - 1)
    assert cuckoo_insert(small, n - 1, max_rounds=300) is None  # more items than bins: never a wrong table


def test_tag_length_and_table_size():
    assert tag_bytes(10**6, 10**6) == 11 and tag_bytes(1, 1) == 8 and tag_bytes(10**9, 10**9) <= 16
    assert table_size(10**6) % 8 == 0 and table_size(10**6) >= 1.27 * 10**6


def test_match_handles_equal_first_words_and_rejects_collisions():
    ref = np.array([b"AAAAAAAA1xx", b"AAAAAAAA2xx", b"BBBBBBBB3xx", b"CCCCCCCC4xx"], dtype="S11")
    q = np.array([b"AAAAAAAA2xx", b"ZZZZZZZZ9xx", b"CCCCCCCC4xx", b"AAAAAAAA1xx", b"AAAAAAAA7xx"], dtype="S11")
    qpos, ridx = match(ref, q)
    assert sorted(zip(qpos.tolist(), ridx.tolist())) == [(0, 1), (2, 3), (3, 0)]
    assert (q[qpos] == ref[ridx]).all() and list(ref[ridx]) == sorted(ref[ridx])
    index = TagIndex(ref)  # the same lookups in streamed blocks
    index.add(q[:2])
    index.add(q[2:])
    assert all(np.array_equal(x, y) for x, y in zip(index.result(), (qpos, ridx)))
    with pytest.raises(CryptoError):
        match(np.array([b"AAAAAAAA1xx", b"AAAAAAAA1xx"], dtype="S11"), q)
    with pytest.raises(CryptoError):
        match(ref, np.array([b"BBBBBBBB3xx", b"BBBBBBBB3xx"], dtype="S11"))


# -- processes and benchmark plumbing --------------------------------------------------------------------


def test_bench_memory_run():
    from privfin.bench.psi import bench_psi

    res = bench_psi(600, 0.5, transport="memory", protocol="kkrt")
    assert res["correct"] and res["intersection"] == 300 and res["protocol"] == "kkrt"


@pytest.mark.grpc
def test_over_grpc_processes():
    """Both parties as separate processes over loopback gRPC with mutual TLS."""
    from privfin.bench.psi import run_grpc

    res = run_grpc(3000, 0.5, PsiParams(block=1024, protocol="kkrt"))
    assert res["correct"] and res["intersection"] == 1500
    assert res["parties"]["alice"]["size"] == res["parties"]["bob"]["size"] == 1500
