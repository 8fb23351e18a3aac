"""Unified social credit codes (统一社会信用代码, GB 32100-2015), generated deterministically."""

from __future__ import annotations

import random

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = [pow(3, i, 31) for i in range(17)]  # 1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28
_ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2]  # GB 11714 organisation code
_ORG_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def check_char(first17: str) -> str:
    """Check character (position 18) for the first 17 characters."""
    total = sum(ALPHABET.index(c) * w for c, w in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def is_valid(code: str) -> bool:
    code = code.strip().upper()
    if len(code) != 18 or any(c not in ALPHABET for c in code):
        return False
    return check_char(code[:17]) == code[17]


def _org_code(rnd: random.Random) -> str:
    """A 9-character organisation code (GB 11714): 8 body characters and its own check digit."""
    body = "".join(rnd.choice("0123456789") for _ in range(2)) + "".join(
        rnd.choice(_ORG_ALPHABET) for _ in range(6)
    )
    total = sum(int(c, 36) * w for c, w in zip(body, _ORG_WEIGHTS, strict=True))
    c9 = 11 - total % 11
    return body + ("X" if c9 == 10 else "0" if c9 == 11 else str(c9))


def make_code(rnd: random.Random, division: str) -> str:
    """An enterprise code ('9' registered by market regulation, '1' enterprise) for an admin division."""
    first17 = "91" + division + _org_code(rnd)
    return first17 + check_char(first17)
