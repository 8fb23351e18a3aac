"""GB 32100-2015 unified social credit codes (docs/domain.md, glossary)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.creditcode import (
    ALPHABET,
    InvalidCreditCode,
    check_char,
    is_valid_credit_code,
    normalize_credit_code,
)

first17 = st.text(alphabet=ALPHABET, min_size=17, max_size=17)
valid_codes = first17.map(lambda body: body + check_char(body))


def test_the_documented_example_is_valid():
    assert normalize_credit_code("91350100M000100Y43") == "91350100M000100Y43"


def test_lower_case_and_surrounding_spaces_are_normalised():
    assert normalize_credit_code("  91350100m000100y43\t") == "91350100M000100Y43"


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("91350100M000100Y4", "18 characters, got 17"),
        ("91350100M000100Y433", "18 characters, got 19"),
        ("", "got 0"),
        ("91350100M000I00Y43", "'I' at position 13"),
        ("9135010OM000100Y43", "'O' at position 8"),
        ("91350100M000100Y4-", "'-' at position 18"),
        ("91350100M000100Y44", "check character at position 18 is '4', expected '3'"),
        ("91350100 M000100Y4", "' ' at position 9"),
    ],
)
def test_invalid_codes_say_what_is_wrong(raw, says):
    with pytest.raises(InvalidCreditCode) as excinfo:
        normalize_credit_code(raw)
    assert says in str(excinfo.value)


@given(valid_codes)
def test_every_generated_valid_code_passes(code):
    assert normalize_credit_code(code) == code
    assert normalize_credit_code(f" {code.lower()} ") == code


@given(valid_codes, st.integers(0, 17), st.sampled_from(ALPHABET))
def test_every_single_character_change_fails(code, position, replacement):
    if code[position] == replacement:
        replacement = ALPHABET[(ALPHABET.index(replacement) + 1) % len(ALPHABET)]
    changed = code[:position] + replacement + code[position + 1 :]
    assert not is_valid_credit_code(changed)


@given(st.text(max_size=30))
def test_arbitrary_text_never_crashes(raw):
    try:
        code = normalize_credit_code(raw)
    except InvalidCreditCode:
        return
    assert len(code) == 18 and code[17] == check_char(code[:17])
