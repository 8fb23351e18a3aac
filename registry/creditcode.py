"""Unified social credit code (统一社会信用代码), GB 32100-2015.

18 characters from a 31-character alphabet; the 18th is a check character over the first 17.
Only that check character is verified, not the organisation-code check digit inside 9–17.
"""

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}


class InvalidCreditCode(ValueError):
    """A credit code that is not a valid GB 32100-2015 code; the message says what is wrong."""

    def __init__(self, code: str, problem: str):
        super().__init__(f"invalid unified social credit code {code!r}: {problem}")
        self.code = code
        self.problem = problem


def check_char(first17: str) -> str:
    total = sum(_VALUE[ch] * w for ch, w in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def normalize_credit_code(raw: str) -> str:
    """Return the canonical code (upper case, stripped) or raise InvalidCreditCode."""
    if not isinstance(raw, str):
        raise InvalidCreditCode(str(raw), "not a string")
    code = raw.strip().upper()
    if len(code) != 18:
        raise InvalidCreditCode(raw, f"must be 18 characters, got {len(code)}")
    for position, ch in enumerate(code, start=1):
        if ch not in _VALUE:
            raise InvalidCreditCode(
                raw,
                f"character {ch!r} at position {position} is not allowed (I, O, S, V, Z never are)",
            )
    expected = check_char(code[:17])
    if code[17] != expected:
        raise InvalidCreditCode(
            raw, f"check character at position 18 is {code[17]!r}, expected {expected!r}"
        )
    return code


def is_valid_credit_code(raw: str) -> bool:
    try:
        normalize_credit_code(raw)
    except InvalidCreditCode:
        return False
    return True
