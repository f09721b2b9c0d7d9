"""Realistic id generators for the PSI tests (valid GB 11643 / GB 32100 check characters)."""

from __future__ import annotations

import random

from privfin.psi.ids import credit_code_check, resident_id_check

REGIONS = ("110105", "310115", "440305", "330106", "510107", "420106", "320102", "370202")
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def resident_id(rng: random.Random) -> str:
    """A random 18-character resident id with a valid GB 11643 check character."""
    body = (rng.choice(REGIONS) + f"{rng.randint(1950, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
            + f"{rng.randint(0, 999):03d}")
    return body + resident_id_check(body)


def credit_code(rng: random.Random) -> str:
    """A random unified social credit code with a valid GB 32100 check character."""
    body = "91" + rng.choice(REGIONS) + "".join(rng.choice(USCC_ALPHABET) for _ in range(9))
    return body + credit_code_check(body)


def numeric18(rng: random.Random) -> str:
    return str(rng.randrange(10**17, 10**18))


def overlapping(gen, rng: random.Random, sizes: tuple[int, ...], common: int) -> list[list[str]]:
    """Sets of the given sizes sharing ``common`` ids, plus random pairwise extras."""
    pool: set[str] = set()
    while len(pool) < common + sum(sizes) * 2:
        pool.add(gen(rng))
    pool_l = sorted(pool)
    rng.shuffle(pool_l)
    shared, rest = pool_l[:common], pool_l[common:]
    out = []
    for i, n in enumerate(sizes):
        own = rest[i * n: i * n + (n - common)]
        s = shared + own
        rng.shuffle(s)
        out.append(s)
    return out
