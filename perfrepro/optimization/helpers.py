"""The helpers ENAMEL's input generators call, written for this project.

ENAMEL's generators run in a scope that holds ``random``, ``string`` and three helpers:
``rand_parens`` (random bracket strings), ``rand_probably_prime`` (a random prime in a range) and
``rand_primality`` (a hard case for primality/factorisation code). Their semantics here are
inferred from how the generators in ``enamel.csv`` call them; the upstream code is not copied.
Every helper draws from the global ``random`` module, so seeding ``random`` seeds the generators.
"""

from __future__ import annotations

import random

# Deterministic Miller-Rabin bases: exact for every n < 3.3e24, far beyond ENAMEL's sizes.
_MR_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41)


def is_probable_prime(n: int) -> bool:
    """Miller-Rabin with fixed bases; exact below 3.3e24 and a strong probable-prime test above."""
    if n < 2:
        return False
    for p in _MR_BASES:
        if n % p == 0:
            return n == p
    d, s = odd_part(n - 1)
    return all(passes_miller_rabin(n, a, d, s) for a in _MR_BASES)


def odd_part(m: int) -> tuple[int, int]:
    """(d, s) with m = d * 2**s and d odd; m > 0."""
    d, s = m, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    return d, s


def passes_miller_rabin(n: int, witness: int, d: int, s: int) -> bool:
    """Whether odd `n` is a strong probable prime to base `witness`, where n - 1 = d * 2**s, d odd
    (one Miller-Rabin round; it draws no random numbers, so callers keep their random streams)."""
    x = pow(witness, d, n)
    if x in (1, n - 1):
        return True
    for _ in range(s - 1):
        x = x * x % n
        if x == n - 1:
            return True
    return False


def rand_probably_prime(lo: int, hi: int | None = None) -> int:
    """A random prime in [lo, hi]; with one argument, in [2, lo] (like ``random.randint``'s bounds).

    Rejection sampling (prime density ~ 1/ln n, so a few dozen draws at 1e18), then a scan of the
    range when it is small or sparse. Raises ValueError when the range holds no prime.
    """
    if hi is None:
        lo, hi = 2, lo
    lo = max(lo, 2)
    if hi < lo:
        raise ValueError(f"rand_probably_prime: no prime in [{lo}, {hi}]")
    for _ in range(64 + 8 * hi.bit_length()):
        candidate = random.randint(lo, hi)
        if is_probable_prime(candidate):
            return candidate
    start = random.randint(lo, hi)  # sparse range: the next prime from a random point, wrapping
    for candidate in list(range(start, hi + 1)) + list(range(lo, start)):
        if is_probable_prime(candidate):
            return candidate
    raise ValueError(f"rand_probably_prime: no prime in [{lo}, {hi}]")


def _largest_power_of_two(limit: int) -> int:
    return 1 << (max(limit, 1).bit_length() - 1)


def rand_primality(size: int, lid: int, cid: int) -> int:
    """An integer in [2, max(size, 4)] that is a hard or edge case for primality code.

    ``cid`` picks the kind, cycling over six: 0 a power of two, 1 a product of two primes near
    sqrt(size), 2 a prime, 3 the square of a prime, 4 twice a prime, 5 three times a prime.
    Only kind 2 is prime (HumanEval/59 asks for non-primes and avoids it). At level 0 the numbers
    are drawn anywhere up to ``size`` (small edge cases included); at higher levels from the top
    half, so the work grows with the level's size. ``lid`` only changes that range.
    """
    size = max(size, 4)
    low = 2 if lid == 0 else max(2, size // 2)
    kind = cid % 6
    root = max(2, int(size ** 0.5))
    if kind == 0:
        return _largest_power_of_two(random.randint(max(low, 4), size))
    if kind == 1:
        p = rand_probably_prime(max(2, root // 2), root)
        q = rand_probably_prime(max(2, (low + p - 1) // p), max(2, size // p))
        return p * q
    if kind == 2:
        return rand_probably_prime(low, size) if _has_prime(low, size) else rand_probably_prime(size)
    if kind == 3:
        return rand_probably_prime(max(2, root // 2), root) ** 2
    factor = 2 if kind == 4 else 3
    top = max(2, size // factor)
    return factor * rand_probably_prime(max(2, min(top, low // factor)), top)


def _has_prime(lo: int, hi: int) -> bool:
    # Bertrand: [k, 2k] holds a prime for k >= 1; only tiny ranges need a look.
    if hi >= 2 * max(lo, 1):
        return True
    return any(is_probable_prime(n) for n in range(max(lo, 2), hi + 1))


def rand_parens(size: int, valid: bool = True, sep: str = "", par: str = "()") -> str:
    """A random bracket string of about ``size`` brackets made of top-level groups joined by ``sep``.

    ``par`` gives the opening and closing characters. A valid string is balanced (a random walk
    that never dips below zero and ends at zero); an invalid one has one bracket flipped, so its
    counts differ and it cannot be balanced. The bracket count is ``size`` rounded down to an
    even number, at least 2.
    """
    if len(par) != 2:
        raise ValueError(f"rand_parens: par must be two characters, got {par!r}")
    open_char, close_char = par
    n = max(2, size - size % 2)
    depth, chars = 0, []
    for i in range(n):
        remaining = n - i
        if depth == 0:
            step = 1
        elif depth >= remaining:
            step = -1
        else:
            step = 1 if random.random() < 0.5 else -1
        depth += step
        chars.append(open_char if step > 0 else close_char)
    if not valid:
        k = random.randrange(n)
        chars[k] = close_char if chars[k] == open_char else open_char
    if not sep:
        return "".join(chars)
    groups, depth, start = [], 0, 0  # split at the points where the walk returns to zero
    for i, c in enumerate(chars):
        depth += 1 if c == open_char else -1
        if depth == 0:
            groups.append("".join(chars[start : i + 1]))
            start = i + 1
    if start < n:
        groups.append("".join(chars[start:]))
    return sep.join(groups)


def generator_scope(**helpers) -> dict:
    """The globals an ENAMEL ``generate_input`` runs in: random, string and the helpers, these or
    those given (pie.protocol: enamel gives ENAMEL's stream-compatible ones, time and miller_rabin)."""
    import string

    return {"__builtins__": __builtins__, "random": random, "string": string, "rand_parens": rand_parens,
            "rand_probably_prime": rand_probably_prime, "rand_primality": rand_primality, **helpers}
