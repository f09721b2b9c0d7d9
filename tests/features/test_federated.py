"""Federated WOE/IV: oracle against the joined plaintext, leak tests on the transcript, bad inputs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from privfin.crypto import EncryptedVector, Packer, load_public_key
from privfin.errors import CryptoError, DataError, ProtocolError
from privfin.features import Binner, plain_stats, woe_active, woe_passive
from privfin.features.federated import TAG_LABELS, TAG_SETUP, TAG_SUMS, TAG_WOE
from privfin.runtime.executor import LocalProcessExecutor, set_executor
from privfin.transport.base import Kind
from privfin.transport.memory import MemoryNetwork, run_parties


def _run(parties: dict[str, tuple], y, params, names=None):
    """parties: {"bank": Xbins, "gov": Xbins, ...}; the first is active."""
    net = MemoryNetwork(tuple(parties))
    active, *passive = parties
    roles = {active: lambda ch: woe_active(ch, y, parties[active], params, feature_names=names)}
    for p in passive:
        roles[p] = lambda ch, p=p: woe_passive(ch, parties[p], params, active=active)
    return net, run_parties(net, roles, timeout=120)


def _assert_oracle(res, X_joined, y, names):
    oracle = plain_stats(X_joined, y, names)
    assert list(res.features) == names
    for k in names:
        o, f = oracle[k], res.features[k].stats
        assert np.array_equal(o.totals, f.totals) and np.array_equal(o.events, f.events), k
        assert np.max(np.abs(o.woe - f.woe)) <= 1e-9 and abs(o.iv - f.iv) <= 1e-9, k
        assert abs(o.auc - f.auc) <= 1e-9 and abs(o.ks - f.ks) <= 1e-9, k


def _windows(data: bytes, k: int = 8) -> set[bytes]:
    return {data[i:i + k] for i in range(len(data) - k + 1)}


@pytest.mark.slow
def test_oracle_and_leaks_default_credit(fate_joined, small_params, serial_executor):
    guest, host = fate_joined
    y = guest["y"].to_numpy()
    Xg_raw, Xh_raw = guest.drop(columns=["id", "y"]), host.drop(columns=["id"])
    bg, bh = Binner().fit(Xg_raw), Binner().fit(Xh_raw)
    Xg, Xh = bg.transform(Xg_raw), bh.transform(Xh_raw)
    names = list(Xg_raw.columns) + [f"gov.f{j:03d}" for j in range(Xh.shape[1])]
    net, out = _run({"bank": Xg, "gov": Xh}, y, small_params, names[:13])
    res = out["bank"]
    assert len(res.features) == 23
    _assert_oracle(res, np.hstack([Xg, Xh]), y, names)
    # sklearn, independently: AUC of the WOE-transformed host feature on the joined rows
    sk = pytest.importorskip("sklearn.metrics")
    f = res.features["gov.f005"].stats
    assert abs(sk.roc_auc_score(y, f.woe[Xh[:, 5]]) - f.auc) <= 1e-9

    # leak: the label holder receives no raw passive value and no passive bin edge (float64 bytes)
    to_bank = b"".join(r.wire for r in net.messages(receiver="bank"))
    wins = _windows(to_bank)
    secrets_ = {float(v) for v in np.unique(Xh_raw.to_numpy().ravel())}
    secrets_ |= {float(e) for cb in bh.bins_.values() if cb.edges is not None for e in cb.edges}
    assert secrets_ and not any(np.float64(v).tobytes() in wins for v in secrets_)
    assert [(e.sender, e.tag, e.kind) for e in net.ledgers["bank"]] == [("gov", TAG_SUMS, Kind.AGGREGATE)]
    # leak: the passive party receives labels only as ciphertexts
    led = net.ledgers["gov"]
    assert {(e.tag, e.kind) for e in led} == {(TAG_SETUP, Kind.PLAINTEXT), (TAG_LABELS, Kind.CIPHERTEXT)}
    n_label_bytes = sum(e.nbytes for e in led if e.tag == TAG_LABELS)
    assert n_label_bytes >= len(y) * 1024 // 8
    to_gov = b"".join(r.wire for r in net.messages(receiver="gov"))
    for arr in (y[:64].astype(np.uint8), y[:64].astype(np.int64), np.packbits(y[:512].astype(np.uint8))):
        assert arr.tobytes() not in to_gov


def test_oracle_generated_mixed_types_three_parties_share_woe(synth_pair, small_params, serial_executor):
    bank, gov = synth_pair
    y = bank["y"].to_numpy()
    Xb_raw = bank.drop(columns=["id", "y"])
    gcols = [c for c in gov.columns if c != "id"]
    X1_raw = gov[gcols[:12]].rename(columns=lambda c: f"secret_col_{c}")
    X2_raw = gov[gcols[12:]]
    assert any(not pd.api.types.is_numeric_dtype(X1_raw[c]) for c in X1_raw)  # categorical columns
    assert X1_raw.isna().any().any() or X2_raw.isna().any().any()             # missing values
    Xb, X1, X2 = (Binner().fit_transform(t) for t in (Xb_raw, X1_raw, X2_raw))
    params = dataclasses.replace(small_params, share_woe=True)
    net, out = _run({"bank": Xb, "gov": X1, "tel": X2}, y, params, list(Xb_raw.columns))
    names = (list(Xb_raw.columns) + [f"gov.f{j:03d}" for j in range(X1.shape[1])]
             + [f"tel.f{j:03d}" for j in range(X2.shape[1])])
    _assert_oracle(out["bank"], np.hstack([Xb, X1, X2]), y, names)
    oracle = plain_stats(np.hstack([Xb, X1, X2]), y, names)
    for party, X in (("gov", X1), ("tel", X2)):
        r = out[party]
        woe_t = r.transform(X)
        for j, a in enumerate(r.aliases):
            assert np.max(np.abs(woe_t[:, j] - oracle[a].woe[X[:, j]])) <= 1e-9
        led = net.ledgers[party]
        assert {(e.sender, e.tag, e.kind) for e in led} == {
            ("bank", TAG_SETUP, Kind.PLAINTEXT), ("bank", TAG_LABELS, Kind.CIPHERTEXT), ("bank", TAG_WOE, Kind.AGGREGATE)}
    # passive parties never hear from each other; no column name reaches the bank
    assert not [r for r in net.transcript if {r.envelope.sender, r.envelope.receiver} == {"gov", "tel"}]
    to_bank = b"".join(r.wire for r in net.messages(receiver="bank"))
    assert b"secret_col" not in to_bank and b"reg_capital" not in to_bank


def test_paillier_and_process_pool(small_params):
    rng = np.random.default_rng(5)
    n = 3000
    y = (rng.random(n) < 0.3).astype(int)
    xa = rng.normal(size=(n, 2)) + y[:, None]
    xp = pd.DataFrame({"a": rng.normal(size=n) - y, "b": rng.choice(["u", "v", "w"], n)})
    Xa, Xp = Binner().fit_transform(pd.DataFrame(xa)), Binner().fit_transform(xp)
    old = set_executor(LocalProcessExecutor(2))
    try:
        params = dataclasses.replace(small_params, scheme="paillier", chunk_rows=1024)
        _, out = _run({"bank": Xa, "gov": Xp}, y, params)
    finally:
        ex = set_executor(old) if old is not None else None
        if ex is not None:
            ex.shutdown()
    _assert_oracle(out["bank"], np.hstack([Xa, Xp]), y, ["x0", "x1", "gov.f000", "gov.f001"])


def test_bad_inputs(small_params, serial_executor):
    rng = np.random.default_rng(2)
    y = (rng.random(500) < 0.4).astype(int)
    Xa = rng.integers(0, 4, (500, 1))
    Xp = rng.integers(0, 4, (500, 2))
    with pytest.raises(ProtocolError, match="not aligned"):
        _run({"bank": Xa, "gov": Xp[:400]}, y, small_params)
    tiny = Xp.copy()
    tiny[:3, 1] = 9  # a bin of 3 rows, below 5% of 500
    with pytest.raises(DataError, match="minimum"):
        _run({"bank": Xa, "gov": tiny}, y, small_params)
    with pytest.raises(CryptoError, match="2048"):
        net = MemoryNetwork(("bank", "gov"))
        run_parties(net, {"bank": lambda ch: woe_active(ch, y, Xa, small_params),
                          "gov": lambda ch: woe_passive(ch, Xp, dataclasses.replace(small_params, allow_insecure=False))})
    with pytest.raises(ProtocolError, match="share_woe"):
        net = MemoryNetwork(("bank", "gov"))
        run_parties(net, {"bank": lambda ch: woe_active(ch, y, Xa, small_params),
                          "gov": lambda ch: woe_passive(ch, Xp, dataclasses.replace(small_params, share_woe=True))})
    with pytest.raises(DataError, match="0 and 1"):
        _run({"bank": Xa, "gov": Xp}, y * 2, small_params)


def test_active_rejects_sums_not_built_from_the_labels(small_params, serial_executor):
    """A passive party sending chosen ciphertexts (e.g. to probe an OU key) gets an error, no WOE."""
    rng = np.random.default_rng(3)
    y = (rng.random(400) < 0.5).astype(int)
    Xa = rng.integers(0, 2, (400, 1))
    params = dataclasses.replace(small_params, share_woe=True)

    def evil(ch):
        setup = ch.recv("bank", TAG_SETUP)
        pk = load_public_key(bytes(setup["key"]))
        for _ in range(setup["n_chunks"]):
            ch.recv("bank", TAG_LABELS)
        packer = Packer.for_key(pk, 1, 10)
        probe = EncryptedVector(pk, np.array([pk.encrypt_ints([pk.max_int]).ciphertexts[0]], dtype=object))
        ch.send("bank", TAG_SUMS, {"aliases": ["gov.f000"], "n_bins": [2], "counts": np.array([200, 200]),
                                   "value_bits": 1, "headroom_bits": 10, "packed": probe.to_wire()},
                kind=Kind.AGGREGATE)
        assert packer.slots > 2
        return ch.recv("bank", TAG_WOE, timeout=3)

    net = MemoryNetwork(("bank", "gov"))
    with pytest.raises(ProtocolError):
        run_parties(net, {"bank": lambda ch: woe_active(ch, y, Xa, params), "gov": evil}, timeout=20)
    assert not [r for r in net.transcript if r.envelope.tag == TAG_WOE]


def test_joint_bin_passes_equal_single_passes(small_params, serial_executor):
    """Bin sums from 3-feature joint passes (marginalized) equal one pass per feature."""
    from privfin.features.federated import plan_groups

    assert plan_groups([11, 11, 11, 11, 2], 2000) == [[0, 1, 2], [3, 4]]
    assert plan_groups([11, 11], 4) == [[0], [1]]
    rng = np.random.default_rng(7)
    n = 2000
    y = (rng.random(n) < 0.3).astype(int)
    Xp = Binner().fit_transform(pd.DataFrame(rng.normal(size=(n, 7)) + y[:, None] * np.arange(7) / 7))
    Xa = Binner().fit_transform(pd.DataFrame({"a": rng.normal(size=n)}))
    names = ["a"] + [f"gov.f{j:03d}" for j in range(7)]
    for cells in (1, 2000, 10**6):
        params = dataclasses.replace(small_params, group_cells=cells, chunk_rows=n)
        _, out = _run({"bank": Xa, "gov": Xp}, y, params, ["a"])
        _assert_oracle(out["bank"], np.hstack([Xa, Xp]), y, names)
