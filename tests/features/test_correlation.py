"""Cross-party Pearson correlation: numpy oracle, transcript leak tests, bad inputs, gRPC processes."""

from __future__ import annotations

import gmpy2
import numpy as np
import pandas as pd
import pytest

from privfin.bench.correlation import bench_correlation, numeric_features
from privfin.errors import CryptoError, DataError, ProtocolError
from privfin.features.correlation import (
    TAG_CROSS,
    TAG_ENC,
    TAG_HELLO,
    TAG_LOCAL,
    TAG_PP_ENC,
    TAG_PP_MASK,
    TAG_PP_RES,
    TAG_PP_SUM,
    TAG_SETUP,
    PearsonCorrelation,
    pearson_active,
    pearson_passive,
    plain_corr,
    signed_multiexp,
    standardize,
)
from privfin.transport.base import Kind
from privfin.transport.memory import MemoryNetwork, run_parties

OPTS = {"key_bits": 512, "allow_insecure": True}  # insecure on purpose: unit tests only


def _oracle(X: np.ndarray) -> np.ndarray:
    """Independent of the module: numpy on the mean-imputed joined columns."""
    df = pd.DataFrame(X)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.corrcoef(df.fillna(df.mean()).to_numpy(), rowvar=False)


def _run(parts: dict[str, tuple[np.ndarray, list[str]]], *, reveal=(), opts=OPTS, popts=None):
    """parts: {"bank": (X, names), "gov": ...}; the first is active."""
    net = MemoryNetwork(tuple(parts))
    active, *passive = parts
    roles = {active: lambda ch: pearson_active(ch, *parts[active], passives=passive, **opts)}
    for p in passive:
        roles[p] = lambda ch, p=p: pearson_passive(ch, *parts[p], active=active, reveal_names=p in reveal,
                                                   **(popts or opts))
    return net, run_parties(net, roles, timeout=120)


def _assert_matches(df: pd.DataFrame, X: np.ndarray, tol: float = 1e-6) -> float:
    o = _oracle(X)
    got = df.to_numpy()
    assert got.shape == o.shape
    assert np.array_equal(np.isnan(got), np.isnan(o))
    diff = float(np.nanmax(np.abs(got - o)))
    assert diff <= tol, diff
    return diff


def _windows(data: bytes, k: int = 8) -> set[bytes]:
    return {data[i:i + k] for i in range(len(data) - k + 1)}


def _assert_absent(wins: set[bytes], X: np.ndarray, what: str) -> None:
    """No raw value, standardized value or fixed-point value of ``X`` appears in the bytes."""
    Z, _ = standardize(X)
    raw = {float(v) for v in np.unique(X[~np.isnan(X)]) if v not in (0.0, 1.0, -1.0)}
    std = {float(v) for v in np.unique(Z) if abs(v) > 1e-3}
    assert raw and std
    assert not any(np.float64(v).tobytes() in wins for v in raw), f"raw {what} value on the wire"
    assert not any(np.float64(v).tobytes() in wins for v in std), f"standardized {what} value on the wire"
    q = np.rint(np.ldexp(Z, 22)).astype(np.int64).ravel()
    q = q[np.abs(q) > 1 << 16][:2000]
    assert not any(v.tobytes() in wins for v in q), f"fixed-point {what} value on the wire"


@pytest.fixture(scope="module")
def synth_numeric():
    from privfin.scenarios import synth

    d = synth.generate(3000, seed=5, overlap=1.0)
    bank = d.bank.sort_values("id").reset_index(drop=True)
    gov = d.gov.sort_values("id").reset_index(drop=True)
    return numeric_features(bank, 13), numeric_features(gov, 24)


def test_oracle_default_credit_13_10(fate_dir, serial_executor):
    path = fate_dir / "UCI_Credit_Card.csv"
    if not path.exists():
        pytest.skip(f"{path} not found (../shared/data/fate is incomplete on this machine)")
    raw = pd.read_csv(path).drop(columns=["ID", "default.payment.next.month"])
    assert raw.shape == (30000, 23)
    Xa, Xp = raw.iloc[:, :13].to_numpy(np.float64), raw.iloc[:, 13:].to_numpy(np.float64)
    net, out = _run({"bank": (Xa, list(raw.columns[:13])), "gov": (Xp, list(raw.columns[13:]))})
    df = out["bank"]
    assert list(df.columns) == list(raw.columns[:13]) + [f"gov.f{j:03d}" for j in range(10)]
    diff = _assert_matches(df, np.hstack([Xa, Xp]))
    assert diff < 2.4e-7  # the stated worst-case fixed-point bound 2^-22
    # the raw values on the wire, both ways
    _assert_absent(_windows(b"".join(r.wire for r in net.messages(receiver="bank"))), Xp, "passive")
    _assert_absent(_windows(b"".join(r.wire for r in net.messages(receiver="gov"))), Xa, "active")


def test_generated_two_passives_ledgers_and_leaks(synth_numeric, serial_executor):
    bank, gov = synth_numeric
    Xa = bank.to_numpy()
    Xg, Xt = gov.iloc[:, :14].to_numpy(), gov.iloc[:, 14:].to_numpy()
    assert np.isnan(Xg).any() and np.isnan(Xa).any()  # missing values on both sides
    net, out = _run({"bank": (Xa, list(bank.columns)), "gov": (Xg, list(gov.columns[:14])),
                     "tel": (Xt, list(gov.columns[14:]))}, reveal={"tel"})
    df = out["bank"]
    assert out["gov"] is None and out["tel"] is None
    assert list(df.columns) == list(bank.columns) + [f"gov.f{j:03d}" for j in range(14)] + list(gov.columns[14:])
    assert df.attrs["owners"]["gov.f003"] == "gov" and df.attrs["owners"][gov.columns[20]] == "tel"
    _assert_matches(df, np.hstack([Xa, Xg, Xt]))

    # ledgers: exactly the documented messages and kinds
    def led(p):
        return sorted({(e.sender, e.tag, str(e.kind)) for e in net.ledgers[p]})

    # tel (10 columns) is narrower than gov (14): tel encrypts, gov evaluates
    assert led("bank") == sorted({("gov", TAG_HELLO, "plaintext"), ("tel", TAG_HELLO, "plaintext"),
                                  ("gov", TAG_LOCAL, "aggregate"), ("tel", TAG_LOCAL, "aggregate"),
                                  ("gov", TAG_CROSS, "aggregate"), ("tel", TAG_CROSS, "aggregate"),
                                  ("tel", TAG_PP_SUM, "share"), ("gov", TAG_PP_MASK, "share")})
    assert led("gov") == sorted({("bank", TAG_SETUP, "plaintext"), ("bank", TAG_ENC, "ciphertext"),
                                 ("tel", TAG_PP_ENC, "ciphertext")})
    assert led("tel") == sorted({("bank", TAG_SETUP, "plaintext"), ("bank", TAG_ENC, "ciphertext"),
                                 ("gov", TAG_PP_RES, "share")})
    # no party's values reach another party in the clear
    for receiver, others in (("bank", (Xg, Xt)), ("gov", (Xa, Xt)), ("tel", (Xa, Xg))):
        wins = _windows(b"".join(r.wire for r in net.messages(receiver=receiver)))
        for X in others:
            _assert_absent(wins, X, f"to {receiver}")
    # passive parties receive nothing but set-up and ciphertexts/masked values
    for p in ("gov", "tel"):
        assert all(e.kind in (Kind.PLAINTEXT, Kind.CIPHERTEXT, Kind.SHARE) for e in net.ledgers[p])
        setup = [r for r in net.messages(receiver=p) if r.envelope.tag == TAG_SETUP]
        assert len(setup) == 1 and b"gov.f000" not in setup[0].wire  # names stay at the bank


def test_heavy_tails_missing_and_constant_columns(serial_executor):
    rng = np.random.default_rng(7)
    n = 2500
    L = rng.standard_normal((n, 3))
    X = np.hstack([np.exp(2.5 * L @ rng.standard_normal((3, 4))), L @ rng.standard_normal((3, 5))])
    X[:, 1] = np.where(rng.random(n) < 0.001, 1e6, 1.0)  # a few huge outliers: |z| near sqrt(n)
    X[rng.random(X.shape) < 0.1] = np.nan
    X[:, 2] = 3.0          # constant (with missing values)
    X[:, 6] = np.nan       # entirely missing
    Xa, Xp = X[:, :4], X[:, 4:]
    _, out = _run({"bank": (Xa, ["a0", "a1", "a2", "a3"]), "gov": (Xp, [f"p{j}" for j in range(5)])})
    df = out["bank"]
    _assert_matches(df, X)
    assert df.loc["a2"].isna().all() and df["gov.f002"].isna().all()
    assert np.allclose(plain_corr(X), _oracle(X), equal_nan=True)


def test_estimator_and_column_names(serial_executor):
    rng = np.random.default_rng(3)
    A = pd.DataFrame(rng.standard_normal((400, 3)), columns=["x", "y", "z"])
    P = pd.DataFrame(rng.standard_normal((400, 2)) + A[["x", "y"]].to_numpy(), columns=["u", "v"])
    net = MemoryNetwork(("bank", "gov"))
    out = run_parties(net, {"bank": lambda ch: PearsonCorrelation(ch, "active", **OPTS).fit(A).corr_,
                            "gov": lambda ch: PearsonCorrelation(ch, "passive", reveal_names=True, **OPTS).fit(P).corr_})
    assert list(out["bank"].columns) == ["x", "y", "z", "u", "v"] and out["gov"] is None
    _assert_matches(out["bank"], np.hstack([A.to_numpy(), P.to_numpy()]))


def test_bad_inputs(serial_executor):
    rng = np.random.default_rng(0)
    A, P = rng.standard_normal((50, 2)), rng.standard_normal((50, 3))
    Pinf = P.copy()
    Pinf[3, 1] = np.inf
    with pytest.raises(DataError, match="infinite"):
        _run({"bank": (A, ["a", "b"]), "gov": (Pinf, ["p", "q", "r"])})
    with pytest.raises(DataError, match="row counts differ"):
        _run({"bank": (A, ["a", "b"]), "gov": (P[:40], ["p", "q", "r"])})
    with pytest.raises(DataError, match="names"):
        _run({"bank": (A, ["a"]), "gov": (P, ["p", "q", "r"])})
    with pytest.raises(DataError, match="numeric"):
        _run({"bank": (np.array([["a", "b"]] * 50), ["a", "b"]), "gov": (P, ["p", "q", "r"])})
    with pytest.raises(DataError, match="at least 2 rows"):
        _run({"bank": (A[:1], ["a", "b"]), "gov": (P[:1], ["p", "q", "r"])})
    with pytest.raises(ProtocolError, match="different correlation parameters"):
        _run({"bank": (A, ["a", "b"]), "gov": (P, ["p", "q", "r"])}, popts={**OPTS, "frac_bits": 20})
    with pytest.raises(ProtocolError, match="clash"):
        _run({"bank": (A, ["a", "p"]), "gov": (P, ["p", "q", "r"])}, reveal={"gov"})
    with pytest.raises(CryptoError, match="2048"):
        _run({"bank": (A, ["a", "b"]), "gov": (P, ["p", "q", "r"])}, opts={"key_bits": 512}, popts={"key_bits": 512})
    with pytest.raises(DataError, match="unknown correlation options"):
        _run({"bank": (A, ["a", "b"]), "gov": (P, ["p", "q", "r"])}, opts={**OPTS, "bins": 3})


def test_signed_multiexp_matches_powers():
    rng = np.random.default_rng(1)
    M = gmpy2.mpz(2**127 - 1) * gmpy2.mpz(2**89 - 1)
    bases = [gmpy2.mpz(int(v)) for v in rng.integers(2, 2**62, 500)]
    for scale in (1, 1 << 13, 1 << 30):
        e = np.rint(rng.standard_normal(500) * scale).astype(np.int64)
        e[::7] = 0
        want = gmpy2.mpz(1)
        for b, k in zip(bases, e.tolist()):
            want = want * gmpy2.powmod(b, k, M) % M
        assert signed_multiexp(bases, e, M) == want


def test_processes_over_grpc():
    out = bench_correlation(400, 5, 7, key_bits=1024, seed=2)
    assert out["nan_match"] and out["max_abs_diff"] <= 1e-6
    assert out["bytes_bank_to_gov"] > 400 * 256  # the encrypted rows crossed the link
