"""ECDH PSI protocols over the in-memory transport: correctness, order, size-only, leaks, errors."""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace

import numpy as np
import pytest

from privfin.errors import ConfigError, PrivfinError, ProtocolError
from privfin.psi import (
    DuplicateIdError,
    EmptyInputError,
    EmptyIntersectionError,
    IdPolicy,
    InvalidIdError,
    PsiParams,
    psi,
    psi_follower,
    psi_leader,
    psi_receiver,
    psi_sender,
)
from privfin.psi import ecdh
from privfin.psi.protocol import okvs_decode, okvs_encode
from privfin.runtime.executor import LocalProcessExecutor, set_executor
from privfin.transport.base import Kind
from privfin.transport.memory import MemoryNetwork, run_parties
from psi_idgen import credit_code, numeric18, overlapping, resident_id

GENERATORS = {"numeric18": numeric18, "resident_id": resident_id, "credit_code": credit_code}


def run(sets: dict[str, list[str]], params: PsiParams | None = None, job: str = "job-psi",
        roles: dict | None = None, protocol: str = "ecdh") -> tuple[MemoryNetwork, dict]:
    """Every party of ``sets`` over one in-memory network with ``protocol`` (the ECDH protocols
    here; test_kkrt.py runs KKRT through the same helper)."""
    net = MemoryNetwork(tuple(sets))
    roles = roles or {}
    params = replace(params or PsiParams(), protocol=protocol)
    fns = {p: (lambda ch, p=p: roles.get(p, psi)(ch, sets[p], params)) for p in sets}
    return net, run_parties(net, fns, job_id=job, timeout=120)


def rows_of(sets, out, party):
    return [sets[party][i] for i in out[party].indices]


# -- correctness and order -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_two_party_equals_set_intersection_same_order(kind):
    rng = random.Random(hash(kind) % 1000)
    a, b = overlapping(GENERATORS[kind], rng, (400, 300), common=120)
    sets = {"bank": a, "gov": b}
    _, out = run(sets, PsiParams(block=64))  # several streamed blocks
    truth = set(a) & set(b)
    ra, rb = rows_of(sets, out, "bank"), rows_of(sets, out, "gov")
    assert set(ra) == truth and len(ra) == len(truth)
    assert ra == rb  # identical row order at both parties
    assert out["bank"].size == out["gov"].size == len(truth)
    assert out["bank"].peer_sizes == {"gov": 300}


def test_two_party_order_is_not_id_order_and_differs_between_jobs():
    rng = random.Random(3)
    a, b = overlapping(numeric18, rng, (200, 200), common=100)
    sets = {"a": a, "b": b}
    _, o1 = run(sets, job="job-1")
    _, o2 = run(sets, job="job-2")
    r1, r2 = rows_of(sets, o1, "a"), rows_of(sets, o2, "a")
    assert set(r1) == set(r2) and r1 != r2 and r1 != sorted(r1)


def test_two_party_with_process_pool():
    old = set_executor(LocalProcessExecutor(2))
    try:
        rng = random.Random(11)
        a, b = overlapping(numeric18, rng, (6000, 5000), common=4000)
        sets = {"a": a, "b": b}
        _, out = run(sets, PsiParams(block=4096))
        assert rows_of(sets, out, "a") == rows_of(sets, out, "b")
        assert set(rows_of(sets, out, "a")) == set(a) & set(b)
    finally:
        ex = set_executor(old) if old is not None else None
        if ex is not None:
            ex.shutdown()


@pytest.mark.parametrize("kind", ["resident_id", "credit_code"])
@pytest.mark.parametrize("n_parties", [3, 4])
def test_multi_party_equals_set_intersection_same_order(kind, n_parties):
    rng = random.Random(n_parties * 7)
    gen = GENERATORS[kind]
    names = ["bank", "gov", "telecom", "bank2"][:n_parties]
    base = overlapping(gen, rng, tuple([300] * n_parties), common=50)
    # add pairwise-only overlaps: ids shared by some but not all parties
    extra = overlapping(gen, rng, (80, 80), common=60)
    sets = {n: list(s) for n, s in zip(names, base)}
    sets["bank"] += [x for x in extra[0] if x not in sets["bank"]]
    sets["gov"] += [x for x in extra[1] if x not in sets["gov"]]
    _, out = run(sets, PsiParams(leader="gov"))
    truth = set.intersection(*(set(s) for s in sets.values()))
    seqs = [rows_of(sets, out, n) for n in names]
    assert set(seqs[0]) == truth and len(seqs[0]) == len(truth)
    assert all(s == seqs[0] for s in seqs)
    assert len(set(sets["bank"]) & set(sets["gov"])) > len(truth)  # pairwise overlap exists


def test_multi_party_role_aliases_and_default_leader():
    rng = random.Random(2)
    a, b, c = overlapping(numeric18, rng, (100, 120, 90), common=30)
    sets = {"bank": a, "gov": b, "tel": c}
    p = PsiParams(leader="bank")
    _, out = run(sets, p, roles={"bank": psi_leader, "gov": psi_follower, "tel": psi_follower})
    assert out["bank"].size == out["gov"].size == out["tel"].size == 30
    _, out2 = run(sets, PsiParams())  # default leader: first name in sorted order ("bank")
    assert rows_of(sets, out2, "tel") == rows_of(sets, out2, "bank")


# -- size-only and named receivers --------------------------------------------------------------------


def test_two_party_size_only_to_one_party():
    rng = random.Random(4)
    a, b = overlapping(numeric18, rng, (300, 250), common=77)
    sets = {"bank": a, "gov": b}
    net, out = run(sets, PsiParams(reveal="size_only", to=("bank",)))
    assert out["bank"].size == 77 and out["bank"].indices is None
    assert out["gov"].size is None and out["gov"].indices is None
    # gov received no tags at all; bank's tags came back sorted (unlinkable to its rows)
    assert not [r for r in net.messages(receiver="gov") if r.envelope.tag == "psi/tags"]
    assert [e.tag for e in net.ledgers["gov"]] == ["psi/hello", "psi/blinded"]
    got = np.concatenate([_payload(r) for r in net.messages(receiver="bank") if r.envelope.tag == "psi/tags"])
    assert len(got) == 300 and np.array_equal(got, np.sort(got))  # sorted: no link to bank's rows


def _payload(record):
    """Decode one transcript record's exact wire bytes back into its payload."""
    import msgpack

    from privfin.transport import serde

    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(record.wire)
    unpacker.unpack()
    hlen = unpacker.tell()
    header, rest = record.wire[:hlen], record.wire[hlen:]
    bufs, off = [], 0
    for size in serde.buffer_sizes(header):
        bufs.append(rest[off:off + size])
        off += size
    return serde.decode(header, bufs)


def test_two_party_size_only_to_both():
    rng = random.Random(5)
    a, b = overlapping(numeric18, rng, (100, 150), common=40)
    _, out = run({"a": a, "b": b}, PsiParams(reveal="size_only"))
    assert out["a"].size == out["b"].size == 40
    assert out["a"].indices is None and out["b"].indices is None


def test_sender_receiver_roles():
    rng = random.Random(6)
    a, b = overlapping(numeric18, rng, (100, 100), common=10)
    sets = {"r": a, "s": b}
    net, out = run(sets, roles={"r": psi_receiver, "s": psi_sender})
    assert set(rows_of(sets, out, "r")) == set(a) & set(b)
    assert out["s"].size is None and out["s"].indices is None
    assert not [e for e in net.ledgers["s"] if e.tag == "psi/tags"]


def test_multi_party_size_only_named_follower():
    rng = random.Random(8)
    a, b, c = overlapping(numeric18, rng, (200, 150, 180), common=25)
    net, out = run({"bank": a, "gov": b, "tel": c}, PsiParams(reveal="size_only", to=("bank", "gov")))
    assert out["bank"].size == out["gov"].size == 25
    assert out["tel"].size is None and all(r.indices is None for r in out.values())
    assert [e for e in net.ledgers["gov"] if e.tag == "psi/result"][0].kind == Kind.AGGREGATE
    assert not [e for e in net.ledgers["tel"] if e.tag == "psi/result"]


def test_multi_party_leader_must_learn():
    rng = random.Random(9)
    a, b, c = overlapping(numeric18, rng, (20, 20, 20), common=5)
    with pytest.raises(ConfigError, match="leader"):
        run({"bank": a, "gov": b, "tel": c}, PsiParams(to=("gov",), leader="bank"))


# -- leaks and ledger -----------------------------------------------------------------------------------


def _unkeyed_hashes(ids: list[str], job: str) -> list[bytes]:
    out = []
    for x in ids:
        b = x.encode()
        out += [b, hashlib.sha256(b).digest()[:16], hashlib.md5(b).digest()[:12], hashlib.blake2b(b).digest()[:16]]
        for ctx in ("two-party", "multi-party"):
            out.append(ecdh.hash_to_u(b, ecdh.domain(job, ctx))[:16])  # the hash-to-curve output
    return out


@pytest.mark.parametrize("n_parties", [2, 3])
def test_transcript_has_no_id_and_no_unkeyed_hash(n_parties):
    rng = random.Random(10 + n_parties)
    names = ["bank", "gov", "tel"][:n_parties]
    sets = dict(zip(names, overlapping(resident_id, rng, tuple([60] * n_parties), common=20)))
    net, out = run(sets, job="job-leak")
    wire = b"".join(r.wire for r in net.transcript)
    for needle in _unkeyed_hashes(sorted(set().union(*sets.values())), "job-leak"):
        assert needle not in wire


def test_two_party_ledger_kinds_match_the_security_section():
    rng = random.Random(12)
    a, b = overlapping(numeric18, rng, (50, 50), common=20)
    net, _ = run({"a": a, "b": b})
    for party in ("a", "b"):
        kinds = {(e.tag, e.kind) for e in net.ledgers[party]}
        assert kinds == {("psi/hello", Kind.PLAINTEXT), ("psi/blinded", Kind.CIPHERTEXT),
                         ("psi/tags", Kind.CIPHERTEXT)}
        steps = {e.tag: e.step for e in net.ledgers[party]}
        assert steps == {"psi/hello": "psi/setup", "psi/blinded": "psi/blind-own", "psi/tags": "psi/blind-peer"}


def test_multi_party_ledger_kinds_and_who_sees_what():
    rng = random.Random(13)
    a, b, c = overlapping(numeric18, rng, (50, 60, 70), common=10)
    net, _ = run({"bank": a, "gov": b, "tel": c}, PsiParams(leader="bank"))
    leader = {(e.tag, e.sender, e.kind) for e in net.ledgers["bank"]}
    assert leader == {(t, f, k) for f in ("gov", "tel") for t, k in
                      [("psi/hello", Kind.PLAINTEXT), ("psi/eval", Kind.CIPHERTEXT), ("psi/okvs", Kind.CIPHERTEXT)]}
    gov = {(e.tag, e.sender, e.kind) for e in net.ledgers["gov"]}
    assert gov == {("psi/hello", "bank", Kind.PLAINTEXT), ("psi/hello", "tel", Kind.PLAINTEXT),
                   ("psi/query-size", "bank", Kind.PLAINTEXT), ("psi/query", "bank", Kind.CIPHERTEXT),
                   ("psi/result", "bank", Kind.PLAINTEXT)}
    tel = {(e.tag, e.sender) for e in net.ledgers["tel"]}
    assert ("psi/zs-key", "gov") in tel  # the follower-pair key never goes through the leader
    assert not [e for e in net.ledgers["bank"] if e.tag == "psi/zs-key"]


def test_size_only_leader_cannot_link_rows():
    """Size-only: followers answer in an order the leader does not know."""
    rng = random.Random(14)
    a, b, c = overlapping(numeric18, rng, (40, 40, 40), common=40)  # identical sets
    net, out = run({"bank": a, "gov": b, "tel": c}, PsiParams(reveal="size_only", leader="bank"))
    assert out["bank"].size == 40 and out["bank"].indices is None
    q = [r for r in net.transcript if r.envelope.tag == "psi/query" and r.envelope.receiver == "gov"]
    e = [r for r in net.transcript if r.envelope.tag == "psi/eval" and r.envelope.sender == "gov"]
    assert len(q) == len(e) == 1


# -- bad input, mismatches, empty results ---------------------------------------------------------------


def test_hygiene_errors_are_clear_privfin_errors():
    with pytest.raises(DuplicateIdError):
        run({"a": ["x", "y", "x"], "b": ["x"]})
    with pytest.raises(EmptyInputError):
        run({"a": [], "b": ["x"]})
    with pytest.raises(InvalidIdError, match="resident_id"):
        run({"a": ["110105194912310021"], "b": ["11010519491231002X"]},
            PsiParams(policy=IdPolicy(checksum="resident_id")))
    p = PsiParams(policy=IdPolicy(checksum="resident_id", on_invalid="skip"))
    _, out = run({"a": ["110105194912310021", " 11010519491231002x"], "b": ["11010519491231002X"]}, p)
    assert out["a"].indices.tolist() == [1] and out["a"].hygiene.n_invalid == 1


def test_no_overlap_is_a_clear_error_or_allowed():
    with pytest.raises(EmptyIntersectionError, match="empty"):
        run({"a": ["1", "2"], "b": ["3"]})
    _, out = run({"a": ["1", "2"], "b": ["3"]}, PsiParams(on_empty="allow"))
    assert out["a"].size == 0 and out["a"].indices.tolist() == []
    _, out = run({"a": ["1"], "b": ["3"], "c": ["1"]}, PsiParams(on_empty="allow"))
    assert out["a"].size == out["c"].size == 0
    _, out = run({"a": ["1"], "b": ["3"]}, PsiParams(reveal="size_only"))
    assert out["a"].size == 0  # a size of zero is an answer, not an error


def test_parameter_mismatch_is_detected():
    net = MemoryNetwork(("a", "b"))
    with pytest.raises(ProtocolError, match="reveal"):
        run_parties(net, {"a": lambda ch: psi(ch, ["1"], PsiParams()),  # auto: KKRT
                          "b": lambda ch: psi(ch, ["1"], PsiParams(reveal="size_only"))}, timeout=10)  # ECDH


def test_to_must_name_parties():
    with pytest.raises(ConfigError):
        run({"a": ["1"], "b": ["1"]}, PsiParams(to=("zed",)))
    with pytest.raises(PrivfinError):
        PsiParams(reveal="everything")  # type: ignore[arg-type]


def test_input_positions_survive_invalid_and_duplicate_rows():
    p = PsiParams(policy=IdPolicy(on_invalid="skip", duplicates="dedupe"))
    _, out = run({"a": ["", "k1", "K1 ", "k2", None, "k3"], "b": ["k3", "k1", "zz"]}, p)
    assert sorted(out["a"].indices.tolist()) == [1, 5]
    assert sorted(out["b"].indices.tolist()) == [0, 1]


# -- OKVS -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_okvs_roundtrip_and_absent_keys_look_random(n):
    rng = np.random.default_rng(n)
    words = rng.integers(0, 2**63, size=(n, 3), dtype=np.uint64)
    vals = rng.integers(0, 2**63, size=(n, 2), dtype=np.uint64)
    table, seed = okvs_encode(words, vals)
    assert np.array_equal(okvs_decode(table, words, seed, n), vals)
    other = rng.integers(0, 2**63, size=(200, 3), dtype=np.uint64)
    dec = okvs_decode(table, other, seed, n)
    assert not (dec == 0).all(axis=1).any()


# -- benchmark plumbing (small) ---------------------------------------------------------------------------


def test_bench_sets_and_memory_run(tmp_path):
    from privfin.bench.psi import bench_psi, make_sets, read_id_csv

    a, b = make_sets(500, 0.8, seed=1)
    assert len(a) == len(b) == len(set(a)) == 500 and len(set(a) & set(b)) == 400
    assert all(len(x) == 18 and x.isdigit() for x in a + b)
    pa, pb = tmp_path / "a.csv", tmp_path / "b.csv"
    pa.write_text("id\n" + "\n".join(a) + "\n")
    pb.write_text("id\n" + "\n".join(b) + "\n")
    assert read_id_csv(pa) == a
    res = bench_psi(500, 0.8, transport="memory", csv=(str(pa), str(pb)), protocol="ecdh")
    assert res["correct"] and res["intersection"] == 400 and res["bytes_sent"] > 0
    assert {"wall_s", "bytes_sent", "peak_rss_mb", "cpu_s"} <= set(res)


@pytest.mark.grpc
def test_two_party_over_grpc_processes():
    """Both parties as separate processes over loopback gRPC with mutual TLS."""
    from privfin.bench.psi import run_grpc

    res = run_grpc(3000, 0.5, PsiParams(block=1024, protocol="ecdh"))
    assert res["correct"] and res["intersection"] == 1500
    assert res["parties"]["alice"]["size"] == res["parties"]["bob"]["size"] == 1500


def test_member_prefix_search_equals_full_search():
    from privfin.psi._stream import TAG_DTYPE, member

    rng = np.random.default_rng(9)
    ref = np.sort(np.frombuffer(rng.bytes(16 * 500), TAG_DTYPE))
    probe = np.concatenate([ref[rng.permutation(500)[:200]], np.frombuffer(rng.bytes(16 * 300), TAG_DTYPE)])
    want = np.isin(probe, ref)
    assert member(probe, ref).tolist() == want.tolist() and want.sum() == 200
    # two reference tags sharing their first 8 bytes: falls back to the full search, still exact
    raw = bytearray(ref.tobytes())
    raw[16:24] = raw[0:8]
    ref2 = np.sort(np.frombuffer(bytes(raw), TAG_DTYPE))
    assert member(probe, ref2).tolist() == np.isin(probe, ref2).tolist()
    assert member(probe, ref2[:0]).tolist() == [False] * len(probe)
