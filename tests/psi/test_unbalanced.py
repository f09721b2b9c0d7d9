"""Unbalanced PSI: correctness, cache reuse, key rotation, leaks, bad input."""

from __future__ import annotations

import hashlib
import random
import shutil

import numpy as np
import pytest

from privfin.errors import ConfigError, CryptoError, ProtocolError
from privfin.psi import DuplicateIdError, EmptyInputError, IdPolicy
from privfin.psi import ecdh
from privfin.psi import unbalanced as ub
from privfin.psi.unbalanced import (
    ClientCache,
    OprfKey,
    StaleCacheError,
    load_large_set,
    prepare_large_set,
    unbalanced_client,
    unbalanced_server,
    unbalanced_sync,
)
from privfin.transport.base import Kind
from privfin.transport.memory import MemoryNetwork, run_parties
from psi_idgen import credit_code, numeric18, overlapping, resident_id

GENERATORS = {"numeric18": numeric18, "resident_id": resident_id, "credit_code": credit_code}


def exchange(st, key, ids, cdir, job="job-u", server_kw=None, client_kw=None, net=None):
    net = net or MemoryNetwork(("bank", "gov"))
    out = run_parties(net, {"gov": lambda ch: unbalanced_server(ch, st, key, **(server_kw or {})),
                            "bank": lambda ch: unbalanced_client(ch, ids, cdir, **(client_kw or {}))},
                      job_id=job, timeout=30)
    return net, out


@pytest.fixture
def dirs(tmp_path):
    return tmp_path / "server", tmp_path / "client"


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_intersection_equals_set_intersection(kind, dirs):
    rng = random.Random(len(kind))
    small, large = overlapping(GENERATORS[kind], rng, (80, 1500), common=30)
    key = OprfKey.generate("gov-2026q4")
    st = prepare_large_set(large, key, dirs[0], block=256)
    _, out = exchange(st, key, small, dirs[1], client_kw={"block": 32})
    r = out["bank"]
    truth = set(small) & set(large)
    assert [small[i] for i in r.indices] == [x for x in small if x in truth]  # ascending input rows
    assert r.size == len(truth) == 30 and r.n_large == 1500 and r.key_id == "gov-2026q4"
    assert out["gov"].batch_size == 80 and out["gov"].table_sent


def test_no_overlap_gives_empty_result(dirs):
    key = OprfKey.generate("k")
    st = prepare_large_set(["A1", "A2", "A3"], key, dirs[0])
    _, out = exchange(st, key, ["B1"], dirs[1])
    assert out["bank"].size == 0 and out["bank"].indices.tolist() == []


def test_preprocessing_is_cached_and_reused_across_batches(dirs, monkeypatch):
    rng = random.Random(7)
    large = [numeric18(rng) for _ in range(3000)]
    key = OprfKey.generate("k1")
    st = prepare_large_set(large, key, dirs[0])
    assert st.built and st.path.exists()

    calls = {"large": 0, "blind": 0}
    real_large, real_blind = ub.large_tags_chunk, ecdh.blind_chunk

    def count_large(values, *a):
        calls["large"] += len(values)
        return real_large(values, *a)

    def count_blind(points, *a):
        calls["blind"] += len(points)
        return real_blind(points, *a)

    monkeypatch.setattr(ub, "large_tags_chunk", count_large)
    again = prepare_large_set(list(reversed(large)), key, dirs[0])  # same set, other order: reused
    assert not again.built and again.table.digest == st.table.digest and calls["large"] == 0
    loaded = load_large_set(dirs[0], key)
    assert not loaded.built and np.array_equal(loaded.table.tags, st.table.tags)

    monkeypatch.setattr(ecdh, "blind_chunk", count_blind)
    net = MemoryNetwork(("bank", "gov"))
    sizes = (10, 25, 40)
    for i, n in enumerate(sizes):
        batch = large[i * 100:i * 100 + n // 2] + [numeric18(rng) for _ in range(n - n // 2)]
        _, out = exchange(loaded, key, batch, dirs[1], job=f"b{i}", net=net)
        assert out["bank"].size == n // 2
        assert out["bank"].table_cached == (i > 0)  # downloaded once, then from the client cache
        assert out["gov"].table_sent == (i == 0)
    # X25519 work per batch id: client blinds, server evaluates, client unblinds; never |Y|
    assert calls["large"] == 0
    assert calls["blind"] == 3 * sum(sizes)


def test_key_rotation_invalidates_caches(dirs):
    rng = random.Random(8)
    small, large = overlapping(resident_id, rng, (40, 400), common=15)
    k1 = OprfKey.generate("gov-2026q3")
    st1 = prepare_large_set(large, k1, dirs[0])
    _, out = exchange(st1, k1, small, dirs[1])
    assert out["bank"].size == 15 and (dirs[1] / "unbalanced-client-gov-2026q3.npz").exists()

    k2 = OprfKey.generate("gov-2026q4")  # rotation: new key, new key id
    with pytest.raises(ub.CacheError, match="no unbalanced cache"):
        load_large_set(dirs[0], k2)  # nothing cached for the new key
    shutil.copy(st1.path, ub.server_cache_path(dirs[0], "unbalanced", "gov-2026q4"))  # old cache under new name
    with pytest.raises(StaleCacheError, match="another key"):
        load_large_set(dirs[0], k2)
    with pytest.raises(StaleCacheError):
        prepare_large_set(large, k2, dirs[0])  # refuses the foreign file rather than trusting it
    ub.server_cache_path(dirs[0], "unbalanced", "gov-2026q4").unlink()
    st2 = prepare_large_set(large, k2, dirs[0])
    assert st2.built and not np.array_equal(st2.table.tags, st1.table.tags)
    with pytest.raises(StaleCacheError):
        exchange(st1, k2, small, dirs[1])  # an old table can never be served under the new key

    _, out = exchange(st2, k2, small, dirs[1], job="after-rotation")
    r = out["bank"]
    assert r.size == 15 and r.key_id == "gov-2026q4" and not r.table_cached  # old client cache not used
    assert not (dirs[1] / "unbalanced-client-gov-2026q3.npz").exists()  # and deleted
    # the same key id under a different secret is refused, never silently mixed
    with pytest.raises(StaleCacheError):
        load_large_set(dirs[0], OprfKey.generate("gov-2026q4"))


def test_key_file_roundtrip_and_validation(tmp_path):
    k = OprfKey.generate("bank-a.v1")
    k.save(tmp_path / "k.json")
    assert OprfKey.load(tmp_path / "k.json") == k and "secret" in repr(k) and k.scalar.hex() not in repr(k)
    assert oct((tmp_path / "k.json").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(ConfigError):
        OprfKey.generate("../etc")
    with pytest.raises(CryptoError):
        OprfKey("ok", b"\x01" * 32)  # not a clamped scalar


# -- leaks -----------------------------------------------------------------------------------------------


def _needles(ids, key_id):
    out = []
    for x in ids:
        b = x.encode()
        out += [b, hashlib.sha256(b).digest()[:16], hashlib.md5(b).digest()[:12], hashlib.blake2b(b).digest()[:16],
                ecdh.hash_to_u(b, ecdh.domain(key_id, "unbalanced"))[:16]]
    return out


def test_transcript_has_no_id_and_no_unkeyed_hash(dirs):
    rng = random.Random(9)
    small, large = overlapping(resident_id, rng, (40, 300), common=20)
    key = OprfKey.generate("kleak")
    st = prepare_large_set(large, key, dirs[0])
    net, _ = exchange(st, key, small, dirs[1])
    wire = b"".join(r.wire for r in net.transcript)
    for needle in _needles(sorted(set(small) | set(large)), "kleak"):
        assert needle not in wire


def test_server_ledger_depends_only_on_batch_size(dirs):
    rng = random.Random(10)
    large = [credit_code(rng) for _ in range(500)]
    key = OprfKey.generate("kl")
    st = prepare_large_set(large, key, dirs[0])
    net0 = MemoryNetwork(("bank", "gov"))
    run_parties(net0, {"gov": lambda ch: unbalanced_server(ch, st, key),
                       "bank": lambda ch: unbalanced_sync(ch, dirs[1])}, job_id="sync")  # warm the client cache
    all_hits = large[:50]
    no_hits = [credit_code(rng) for _ in range(50)]
    ledgers, results = [], []
    for batch in (all_hits, no_hits):
        net, out = exchange(st, key, batch, dirs[1], client_kw={"block": 16})
        ledgers.append([(e.step, e.tag, e.sender, e.nbytes, e.kind) for e in net.ledgers["gov"]])
        results.append(out["bank"].size)
    assert results == [50, 0]
    assert ledgers[0] == ledgers[1]
    assert {(t, k) for _, t, _, _, k in ledgers[0]} == {("upsi/hello", Kind.PLAINTEXT),
                                                       ("upsi/blinded", Kind.CIPHERTEXT)}
    assert sum(n for _, t, _, n, _ in ledgers[0] if t == "upsi/blinded") >= 50 * 32


# -- bad input ---------------------------------------------------------------------------------------------


def test_bad_input_gives_clear_errors(dirs):
    key = OprfKey.generate("kb")
    with pytest.raises(DuplicateIdError):
        prepare_large_set(["X1", "x1 "], key, dirs[0])  # duplicate after normalization
    st = prepare_large_set(["X1", "X2", "X3"], key, dirs[0])
    with pytest.raises(EmptyInputError):
        exchange(st, key, [], dirs[1])
    with pytest.raises(DuplicateIdError, match="duplicate"):
        exchange(st, key, ["x1", "X1"], dirs[1])
    _, out = exchange(st, key, ["x1", "X1", "q"], dirs[1], client_kw={"policy": IdPolicy(duplicates="dedupe")})
    assert out["bank"].indices.tolist() == [0] and out["bank"].hygiene.n_duplicates == 1
    with pytest.raises(ProtocolError, match="limit of 2"):
        exchange(st, key, ["a", "b", "c"], dirs[1], server_kw={"max_batch": 2})
    with pytest.raises(ProtocolError, match="policy"):
        exchange(st, key, ["a"], dirs[1], client_kw={"policy": IdPolicy(case="lower")})
    with pytest.raises(ConfigError):
        net = MemoryNetwork(("bank", "gov", "tel"))
        run_parties(net, {p: (lambda ch: unbalanced_client(ch, ["a"], dirs[1])) for p in ("bank", "gov", "tel")},
                    timeout=5)


def test_corrupt_client_cache_is_not_trusted(dirs):
    key = OprfKey.generate("kc")
    st = prepare_large_set(["A", "B"], key, dirs[0])
    exchange(st, key, ["A"], dirs[1])
    p = ClientCache(dirs[1]).path("unbalanced", "kc")
    p.write_bytes(b"garbage")
    _, out = exchange(st, key, ["A", "C"], dirs[1], job="j2")  # unreadable cache: downloaded again
    assert out["bank"].size == 1 and not out["bank"].table_cached


@pytest.mark.grpc
def test_bench_over_grpc_processes():
    from privfin.bench.psi_unbalanced import run_unbalanced_bench

    res = run_unbalanced_bench(200, 4000, repeats=2)
    assert res["correct"] and res["intersection"] == 100
    assert {"wall_s", "bytes_sent", "peak_rss_mb", "online_s", "offline_s", "cpu_s"} <= set(res)
    assert res["online_bytes_sent"] < 200 * 64 + 4096
