"""``privfin bench he``: per-core throughput of Paillier and OU (encrypt, decrypt, add, multiply).

Per-core means: one process, the in-process (serial) executor, rates from this process's CPU
time (``time.process_time``), the same method as ``shared/peers/bench/he_peers.py``. Each
operation runs for about ``seconds`` of CPU, ``repeats`` times; the median is reported with
every repetition. Plaintexts follow the peer script: random 62-bit integers for Paillier
(as for ``phe``), random 40-bit integers for OU (as for HEU). ``pool_encrypt_per_s`` is the
wall-clock rate through the default process pool (all cores), for reference.

Also runnable as ``python -m privfin.bench.he --peers PYTHON`` to run the peer script and this
bench alternately ``--runs`` times and print medians and ratios (what
``benchmarks/sections/he.md`` records).
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gmpy2
import numpy as np

from privfin.crypto import Packer, ou, paillier
from privfin.runtime.executor import SerialExecutor, get_executor, set_executor

PLAINTEXT_BITS = {"paillier": 62, "ou": 40}
MUL_SCALAR_BITS = 40
PACK_VALUE_BITS, PACK_HEADROOM_BITS = 32, 20


def _rate(fn: Callable[[int], Any], batch: int, seconds: float) -> float:
    """Operations per CPU second: repeat ``fn(batch)`` until ``seconds`` of CPU have passed."""
    done, t0 = 0, time.process_time()
    while True:
        fn(batch)
        done += batch
        dt = time.process_time() - t0
        if dt >= seconds:
            return done / dt


def _median_of(fn: Callable[[int], Any], batch: int, seconds: float, repeats: int) -> dict[str, Any]:
    runs = [_rate(fn, batch, seconds) for _ in range(repeats)]
    return {"median": round(statistics.median(runs), 1), "runs": [round(r, 1) for r in runs]}


def _bench_scheme(name: str, key_bits: int, seconds: float, repeats: int, batch: int) -> dict[str, Any]:
    mod = paillier if name == "paillier" else ou
    t0 = time.perf_counter()
    pk, sk = mod.keygen(key_bits, allow_insecure=key_bits < 2048)
    keygen_s = time.perf_counter() - t0
    t0 = time.process_time()
    pk.random_zeros(1)           # build the randomizer table (once per process and key)
    pk.encrypt(np.array([1, -1]))  # and the first plaintext-table rows
    table_s = time.process_time() - t0

    pbits = PLAINTEXT_BITS[name]
    xs = np.array([secrets.randbits(pbits) for _ in range(batch)], dtype=np.int64)
    floats = np.random.default_rng().normal(size=batch)
    ks = np.array([secrets.randbits(MUL_SCALAR_BITS) for _ in range(batch)], dtype=np.int64)
    ct = pk.encrypt(xs)
    ct2 = pk.encrypt(xs[::-1].copy())
    packer = Packer.for_key(pk, PACK_VALUE_BITS, PACK_HEADROOM_BITS)
    small = np.array([secrets.randbits(PACK_VALUE_BITS) for _ in range(batch * packer.slots)], dtype=np.int64)
    packed_ct = packer.encrypt(pk, small.reshape(batch, packer.slots))

    out: dict[str, Any] = {
        "key_bits": int(pk.key_bits),
        "randomizer_bits": pk.randomizer_bits,
        "plaintext_bits": pbits,
        "keygen_s": round(keygen_s, 3),
        "table_build_cpu_s": round(table_s, 3),
        "ciphertext_bytes": pk.ciphertext_bytes,
    }
    out["encrypt_per_s"] = _median_of(lambda n: pk.encrypt(xs[:n]), batch, seconds, repeats)
    out["encrypt_float_per_s"] = _median_of(lambda n: pk.encrypt(floats[:n]), batch, seconds, repeats)
    dec_batch = max(8, batch // 8)
    dec_ct = ct[:dec_batch]
    out["decrypt_per_s"] = _median_of(lambda n: sk.decrypt(dec_ct), dec_batch, seconds, repeats)
    pk_dec = packed_ct[:dec_batch]
    slots = packer.slots
    vals = _median_of(lambda n: packer.decrypt(sk, pk_dec, slots), dec_batch, seconds, repeats)
    out["decrypt_packed"] = {"slots": slots, "value_bits": PACK_VALUE_BITS, "headroom_bits": PACK_HEADROOM_BITS,
                             "ciphertexts_per_s": vals,
                             "values_per_s": round(vals["median"] * slots, 1)}
    out["add_per_s"] = _median_of(lambda n: ct + ct2, batch, seconds, repeats)
    out["add_plain_per_s"] = _median_of(lambda n: ct + xs, batch, seconds, repeats)
    out["mul_scalar_per_s"] = _median_of(lambda n: ct * ks, batch, seconds, repeats)
    out["mul_scalar_bits"] = MUL_SCALAR_BITS
    if name == "paillier":
        pk_djn = paillier.PaillierPublicKey(pk.n, pk.hs, -(-(key_bits // 2) // 8) * 8)
        pk_djn.random_zeros(1)
        r = _median_of(lambda n: pk_djn.encrypt(xs[:n]), batch, seconds, repeats)
        out["encrypt_djn_half_n_randomizer_per_s"] = {**r, "randomizer_bits": pk_djn.randomizer_bits}
    return out


def _pool_encrypt(name: str, key_bits: int, n: int) -> dict[str, Any]:
    mod = paillier if name == "paillier" else ou
    pk, _ = mod.keygen(key_bits, allow_insecure=key_bits < 2048)
    xs = np.array([secrets.randbits(PLAINTEXT_BITS[name]) for _ in range(n)], dtype=np.int64)
    ex = get_executor()
    pk.encrypt(xs[: 4 * ex.n_workers * 64])  # start workers, build their tables
    t0 = time.perf_counter()
    pk.encrypt(xs)
    dt = time.perf_counter() - t0
    return {"workers": ex.n_workers, "n": n, "per_s": round(n / dt, 1)}


def run_he_bench(key_bits: int = 2048, seconds: float = 1.0, repeats: int = 3, batch: int = 400,
                 schemes: tuple[str, ...] = ("paillier", "ou"), pool: bool = True) -> dict[str, Any]:
    """Run the HE benchmark; returns a JSON-able dict (see the module docstring)."""
    result: dict[str, Any] = {
        "bench": "he",
        "key_bits": key_bits,
        "per_core": True,
        "method": "single process, serial executor, ops / process CPU second; median of repeats",
        "seconds_per_repeat": seconds,
        "repeats": repeats,
        "python": platform.python_version(),
        "gmpy2": gmpy2.version(),
        "gmp": gmpy2.mp_version(),
        "cpu_count": os.cpu_count(),
    }
    old = get_executor()
    set_executor(SerialExecutor())
    try:
        for name in schemes:
            result[name] = _bench_scheme(name, key_bits, seconds, repeats, batch)
    finally:
        set_executor(old)
    if pool:
        for name in schemes:
            result[name]["pool_encrypt_per_s"] = _pool_encrypt(name, key_bits, 20000 if name == "ou" else 8000)
    return result


# --------------------------------------------------------------------------- peers comparison

PEER_SCRIPT = Path(__file__).resolve().parents[3].parent / "shared" / "peers" / "bench" / "he_peers.py"

RATIOS = [  # (label, ours, peer key, target)
    ("paillier encrypt / phe", ("paillier", "encrypt_per_s"), "phe_encrypt_per_s", 25.0),
    ("paillier encrypt / HEU ZPaillier", ("paillier", "encrypt_per_s"), "heu_paillier_encrypt_per_s", 1.5),
    ("paillier decrypt / phe", ("paillier", "decrypt_per_s"), "phe_decrypt_per_s", 0.9),
    ("paillier decrypt / HEU ZPaillier", ("paillier", "decrypt_per_s"), "heu_paillier_decrypt_per_s", 0.9),
    ("paillier add / phe", ("paillier", "add_per_s"), "phe_add_per_s", 1.5),
    ("ou encrypt / HEU OU", ("ou", "encrypt_per_s"), "heu_ou_encrypt_per_s", 0.5),
    ("ou decrypt / HEU OU", ("ou", "decrypt_per_s"), "heu_ou_decrypt_per_s", None),
    ("paillier encrypt (DJN n/2 randomizer) / HEU ZPaillier",
     ("paillier", "encrypt_djn_half_n_randomizer_per_s"), "heu_paillier_encrypt_per_s", None),
]


def compare_with_peers(peers_python: str, runs: int = 3, seconds: float = 1.0,
                       peer_script: str | None = None, out_dir: str | None = None) -> dict[str, Any]:
    """Alternate the peer script and :func:`run_he_bench` ``runs`` times; medians and ratios."""
    script = peer_script or str(PEER_SCRIPT)
    out = Path(out_dir or "/tmp/privfin-he-peers")
    env = dict(os.environ, OUT_DIR=str(out))
    peers, ours = [], []
    for _ in range(runs):
        subprocess.run([peers_python, script], capture_output=True, text=True, env=env, check=True)
        peers.append(json.loads((out / "results" / "he_peers.json").read_text()))
        ours.append(run_he_bench(2048, seconds=seconds, repeats=1, pool=False))
    peer_med = {k: statistics.median(p[k] for p in peers) for k in peers[0]}

    def our_val(r: dict[str, Any], path: tuple[str, str]) -> float:
        return float(r[path[0]][path[1]]["median"])

    table = []
    for label, path, pkey, target in RATIOS:
        vals = [our_val(r, path) for r in ours]
        per_run = [v / p[pkey] for v, p in zip(vals, peers)]
        ratio = statistics.median(vals) / peer_med[pkey]
        table.append({"what": label, "privfin_median": round(statistics.median(vals), 1),
                      "privfin_runs": [round(v, 1) for v in vals], "peer_median": round(peer_med[pkey], 1),
                      "peer_runs": [p[pkey] for p in peers], "ratio_of_medians": round(ratio, 2),
                      "ratio_per_run": [round(x, 2) for x in per_run], "target": target,
                      "met": None if target is None else ratio >= target})
    extra = {
        "paillier_decrypt_packed_values_per_s": statistics.median(r["paillier"]["decrypt_packed"]["values_per_s"]
                                                                  for r in ours),
        "ou_decrypt_packed_values_per_s": statistics.median(r["ou"]["decrypt_packed"]["values_per_s"] for r in ours),
        "paillier_mul_scalar_per_s": statistics.median(r["paillier"]["mul_scalar_per_s"]["median"] for r in ours),
        "ou_mul_scalar_per_s": statistics.median(r["ou"]["mul_scalar_per_s"]["median"] for r in ours),
        "ou_add_per_s": statistics.median(r["ou"]["add_per_s"]["median"] for r in ours),
        "paillier_encrypt_float_per_s": statistics.median(r["paillier"]["encrypt_float_per_s"]["median"]
                                                          for r in ours),
        "ou_encrypt_float_per_s": statistics.median(r["ou"]["encrypt_float_per_s"]["median"] for r in ours),
    }
    return {"runs": runs, "peers": peers, "privfin": ours, "peer_medians": peer_med, "ratios": table,
            "privfin_extra_medians": extra}
