"""Anonymous query (labeled PSI): hits and payloads, caching, rotation, leaks, bad input."""

from __future__ import annotations

import hashlib
import json
import random

import numpy as np
import pytest

from privfin.errors import ConfigError, DataError, ProtocolError
from privfin.psi import DuplicateIdError, EmptyInputError, IdPolicy
from privfin.psi import ecdh
from privfin.psi import query as qm
from privfin.psi.query import PayloadTooLargeError, load_list, prepare_list, query_client, query_server, query_sync
from privfin.psi.unbalanced import ClientCache, OprfKey, StaleCacheError, server_cache_path
from privfin.transport.base import Kind
from privfin.transport.memory import MemoryNetwork, run_parties
from psi_idgen import credit_code, numeric18, resident_id

TAGS = ("fraud-ring", "stolen-id", "mule-account", "court-enforced", "overdue-90d")


def blacklist(rng: random.Random, n: int, gen=resident_id) -> dict[str, dict]:
    out: dict[str, dict] = {}
    while len(out) < n:
        out[gen(rng)] = {"risk": rng.choice(TAGS), "date": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                         "level": rng.randint(1, 5)}
    return out


def lookup(lst, key, ids, cdir, job="job-q", server_kw=None, client_kw=None, net=None):
    net = net or MemoryNetwork(("bank", "police"))
    out = run_parties(net, {"police": lambda ch: query_server(ch, lst, key, **(server_kw or {})),
                            "bank": lambda ch: query_client(ch, ids, cdir, **(client_kw or {}))},
                      job_id=job, timeout=30)
    return net, out


@pytest.fixture
def dirs(tmp_path):
    return tmp_path / "server", tmp_path / "client"


@pytest.mark.parametrize("gen", [resident_id, credit_code, numeric18])
def test_hits_and_payloads_equal_dict_lookup(gen, dirs):
    rng = random.Random(gen.__name__)
    entries = blacklist(rng, 800, gen)
    listed = list(entries)
    batch = rng.sample(listed, 25) + [gen(rng) for _ in range(35)]
    batch = [x for x in dict.fromkeys(batch)]
    rng.shuffle(batch)
    key = OprfKey.generate("police-2026")
    lst = prepare_list(entries, key, dirs[0], block=128)
    _, out = lookup(lst, key, batch, dirs[1], client_kw={"block": 16})
    r = out["bank"]
    assert r.hits.tolist() == [x in entries for x in batch]
    assert {batch[i]: r.json(i) for i in r.payloads} == {x: entries[x] for x in batch if x in entries}
    assert r.size == 25 and r.n_list == 800 and out["police"].batch_size == len(batch)


def test_payload_kinds_and_fixed_ciphertext_length(dirs):
    key = OprfKey.generate("k")
    entries = [("A1", b"\x00\x01raw"), ("A2", "文本 text"), ("A3", {"r": 1}), ("A4", ""), ("A5", "x" * 40)]
    lst = prepare_list(entries, key, dirs[0], payload_size=40)
    assert lst.table.cts.shape == (5, 2 + 40 + 16)  # one length for every payload size
    _, out = lookup(lst, key, ["A5", "A2", "A1", "zz", "A4", "A3"], dirs[1])
    p = out["bank"].payloads
    assert p == {0: b"x" * 40, 1: "文本 text".encode(), 2: b"\x00\x01raw", 4: b"", 5: b'{"r":1}'}
    assert out["bank"].hits.tolist() == [True, True, True, False, True, True]


def test_preprocessing_reused_across_batches(dirs, monkeypatch):
    rng = random.Random(3)
    entries = blacklist(rng, 1500)
    key = OprfKey.generate("k1")
    lst = prepare_list(entries, key, dirs[0])
    calls = {"entries": 0, "blind": 0}
    real_entries, real_blind = qm.entries_chunk, ecdh.blind_chunk

    def count_entries(rows, *a):
        calls["entries"] += len(rows)
        return real_entries(rows, *a)

    def count_blind(points, *a):
        calls["blind"] += len(points)
        return real_blind(points, *a)

    monkeypatch.setattr(qm, "entries_chunk", count_entries)
    monkeypatch.setattr(ecdh, "blind_chunk", count_blind)
    again = prepare_list(dict(reversed(list(entries.items()))), key, dirs[0])
    assert not again.built and again.table.digest == lst.table.digest
    loaded = load_list(dirs[0], key)
    net = MemoryNetwork(("bank", "police"))
    listed = list(entries)
    for i, n in enumerate((5, 12, 30)):
        batch = listed[i * 50:i * 50 + n]
        _, out = lookup(loaded, key, batch, dirs[1], job=f"b{i}", net=net)
        assert out["bank"].size == n and out["bank"].table_cached == (i > 0)
    assert calls["entries"] == 0  # never re-encrypted
    assert calls["blind"] == 3 * (5 + 12 + 30)  # client blind, server evaluate, client unblind: batch ids only
    # a changed list (same key) is re-preprocessed under a fresh salt; the client re-downloads
    entries[listed[0]] = {"risk": "cleared"}
    changed = prepare_list(entries, key, dirs[0])
    assert changed.built and calls["entries"] == 1500
    assert changed.table.extra["salt"] != lst.table.extra["salt"]
    _, out = lookup(changed, key, listed[:2], dirs[1], job="b9", net=net)
    assert not out["bank"].table_cached and out["bank"].json(0) == {"risk": "cleared"}


def test_key_rotation_invalidates_caches(dirs):
    rng = random.Random(4)
    entries = blacklist(rng, 200)
    k1, k2 = OprfKey.generate("tel-v1"), OprfKey.generate("tel-v2")
    l1 = prepare_list(entries, k1, dirs[0])
    lookup(l1, k1, list(entries)[:3], dirs[1])
    server_cache_path(dirs[0], "query", "tel-v2").write_bytes(l1.path.read_bytes())  # old cache, new name
    with pytest.raises(StaleCacheError):
        load_list(dirs[0], k2)
    server_cache_path(dirs[0], "query", "tel-v2").unlink()
    l2 = prepare_list(entries, k2, dirs[0])
    with pytest.raises(StaleCacheError):
        lookup(l1, k2, ["x"], dirs[1])
    _, out = lookup(l2, k2, list(entries)[:3], dirs[1], job="j2")
    assert out["bank"].size == 3 and out["bank"].key_id == "tel-v2" and not out["bank"].table_cached
    assert [p.name for p in dirs[1].iterdir()] == ["query-client-tel-v2.npz"]


# -- leaks -------------------------------------------------------------------------------------------


def test_transcript_has_no_id_no_unkeyed_hash_no_payload(dirs):
    rng = random.Random(5)
    entries = blacklist(rng, 300)
    batch = list(entries)[:10] + [resident_id(rng) for _ in range(10)]
    key = OprfKey.generate("kleak")
    lst = prepare_list(entries, key, dirs[0])
    net, out = lookup(lst, key, batch, dirs[1])
    assert out["bank"].size == 10
    wire = b"".join(r.wire for r in net.transcript)
    for x in set(batch) | set(entries):
        b = x.encode()
        for needle in (b, hashlib.sha256(b).digest()[:16], hashlib.md5(b).digest()[:12],
                       hashlib.blake2b(b).digest()[:16], ecdh.hash_to_u(b, ecdh.domain("kleak", "query"))[:16]):
            assert needle not in wire
    for p in entries.values():
        assert qm.encode_payload(p) not in wire
    for tag in TAGS:
        assert tag.encode() not in wire


def test_list_holder_ledger_depends_only_on_batch_size(dirs):
    rng = random.Random(6)
    entries = blacklist(rng, 400)
    key = OprfKey.generate("kl")
    lst = prepare_list(entries, key, dirs[0])
    run_parties(MemoryNetwork(("bank", "police")), {"police": lambda ch: query_server(ch, lst, key),
                                                    "bank": lambda ch: query_sync(ch, dirs[1])}, job_id="sync")
    hits = list(entries)[:40]
    misses = [resident_id(rng) for _ in range(40)]
    half = hits[:20] + misses[:20]
    ledgers, sizes = [], []
    for batch in (hits, misses, half):
        net, out = lookup(lst, key, batch, dirs[1], client_kw={"block": 16})
        ledgers.append([(e.step, e.tag, e.sender, e.nbytes, e.kind) for e in net.ledgers["police"]])
        sizes.append(out["bank"].size)
        assert out["bank"].table_cached
    assert sizes == [40, 0, 20]
    assert ledgers[0] == ledgers[1] == ledgers[2]
    assert {(t, k) for _, t, _, _, k in ledgers[0]} == {("query/hello", Kind.PLAINTEXT),
                                                       ("query/blinded", Kind.CIPHERTEXT)}
    # another batch size shows only in the size of the blinded stream
    net, _ = lookup(lst, key, hits[:7], dirs[1])
    assert [e.tag for e in net.ledgers["police"]] == ["query/hello", "query/blinded"]


def test_querier_ledger_kinds(dirs):
    key = OprfKey.generate("kk")
    lst = prepare_list({"A": "x"}, key, dirs[0])
    net, _ = lookup(lst, key, ["A"], dirs[1])
    assert {(e.tag, e.kind) for e in net.ledgers["bank"]} == {
        ("query/hello", Kind.PLAINTEXT), ("query/table", Kind.CIPHERTEXT), ("query/eval", Kind.CIPHERTEXT)}


# -- bad input ---------------------------------------------------------------------------------------


def test_bad_input_gives_clear_errors(dirs):
    key = OprfKey.generate("kb")
    with pytest.raises(PayloadTooLargeError, match="row 1"):
        prepare_list([("A", "ok"), ("B", "y" * 65)], key, dirs[0])
    with pytest.raises(DuplicateIdError):
        prepare_list([("A", "1"), (" a", "2")], key, dirs[0])
    with pytest.raises(EmptyInputError):
        prepare_list({}, key, dirs[0])
    with pytest.raises(DataError):
        prepare_list([("A", object())], key, dirs[0])
    with pytest.raises(ConfigError):
        prepare_list({"A": "x"}, key, dirs[0], payload_size=0)
    lst = prepare_list({"A": "x", "B": "y"}, key, dirs[0])
    with pytest.raises(EmptyInputError):
        lookup(lst, key, [], dirs[1])
    with pytest.raises(DuplicateIdError):
        lookup(lst, key, ["a", "A "], dirs[1])
    _, out = lookup(lst, key, ["a", "A ", None, "b"], dirs[1],
                    client_kw={"policy": IdPolicy(duplicates="dedupe", on_invalid="skip")})
    assert out["bank"].payloads == {0: b"x", 3: b"y"} and out["bank"].hits.tolist() == [True, False, False, True]
    with pytest.raises(ProtocolError, match="limit"):
        lookup(lst, key, ["a", "b"], dirs[1], server_kw={"max_batch": 1})


def test_tampered_table_entry_is_detected(dirs):
    key = OprfKey.generate("kt")
    lst = prepare_list({"A": "x"}, key, dirs[0])
    lookup(lst, key, ["A"], dirs[1])
    cache = ClientCache(dirs[1])
    meta = cache.current("query")
    table = cache.load("query", "kt", meta["digest"])
    table.cts = table.cts.copy()
    table.cts[0, 5] ^= 1
    from privfin.psi.unbalanced import _write_npz

    _write_npz(cache.path("query", "kt"), table.meta(), {"tags": table.tags, "cts": table.cts})
    with pytest.raises(ProtocolError, match="authentication"):
        lookup(lst, key, ["A"], dirs[1], job="j2")


@pytest.mark.grpc
def test_bench_over_grpc_processes():
    from privfin.bench.psi_unbalanced import run_query_bench

    res = run_query_bench(100, 3000, repeats=2)
    assert res["correct"] and res["hits"] == 50
    assert {"wall_s", "bytes_sent", "peak_rss_mb", "online_s", "offline_s", "cpu_s"} <= set(res)
    assert json.dumps(res)
    assert np.isfinite(res["online_s"])
