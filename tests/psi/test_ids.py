"""Input hygiene: normalization, checksums, duplicates, empty input."""

from __future__ import annotations

import random

import numpy as np
import pytest

from privfin.errors import DataError, PrivfinError
from privfin.psi.ids import (
    DuplicateIdError,
    EmptyInputError,
    IdPolicy,
    InvalidIdError,
    clean_ids,
    is_valid_credit_code,
    is_valid_resident_id,
)

from psi_idgen import credit_code, resident_id


def test_known_checksums():
    assert is_valid_resident_id("11010519491231002X")  # the standard's worked example
    assert not is_valid_resident_id("110105194912310021")
    assert not is_valid_resident_id("11010519491231002")  # 17 chars
    assert is_valid_credit_code("91350100M000100Y43")
    assert not is_valid_credit_code("91350100M000100Y44")
    assert not is_valid_credit_code("91350100M000100I43")  # I is not in the alphabet


def test_generated_ids_validate_and_single_errors_are_caught():
    rng = random.Random(5)
    for _ in range(300):
        rid, cc = resident_id(rng), credit_code(rng)
        assert is_valid_resident_id(rid) and is_valid_credit_code(cc)
        # any single-character substitution in the body is detected (mod-11 / mod-31 weights)
        i = rng.randrange(17)
        bad = rid[:i] + str((int(rid[i]) + 1) % 10) + rid[i + 1:]
        assert not is_valid_resident_id(bad)


def test_normalization_trim_case_fullwidth():
    c = clean_ids(["  ab1 ", "ＣＤ２\u3000", 12345, b"ef"], IdPolicy())
    assert c.values.tolist() == [b"AB1", b"CD2", b"12345", b"EF"]
    c = clean_ids([" Ab "], IdPolicy(case="lower"))
    assert c.values.tolist() == [b"ab"]
    c = clean_ids([" Ab "], IdPolicy(case="keep", strip=False))
    assert c.values.tolist() == [b" Ab "]


def test_checksum_reject_names_row_not_value():
    ids = ["11010519491231002X", "110105194912310021", "11010519491231002x"]
    with pytest.raises(InvalidIdError) as ei:
        clean_ids(ids, IdPolicy(checksum="resident_id"))
    msg = str(ei.value)
    assert "1 of 3" in msg and "row 1" in msg and "110105194912310021" not in msg
    assert isinstance(ei.value, DataError)


def test_checksum_skip_and_count():
    ids = ["11010519491231002X", "bad", None, "91350100M000100Y43", ""]
    c = clean_ids(ids, IdPolicy(checksum="resident_id_or_credit_code", on_invalid="skip"))
    assert c.rows.tolist() == [0, 3]
    assert c.report.n_invalid == 3 and c.report.n_used == 2
    assert sum(c.report.invalid_reasons.values()) == 3


def test_duplicates_error_by_default_and_dedupe_on_request():
    with pytest.raises(DuplicateIdError, match="1 duplicate"):
        clean_ids(["a", "b", " A"])
    c = clean_ids(["a", "b", " A"], IdPolicy(duplicates="dedupe"))
    assert c.rows.tolist() == [0, 1] and c.report.n_duplicates == 1


@pytest.mark.parametrize("ids", [[], np.array([], dtype=str), ["", "  ", None]])
def test_empty_input(ids):
    with pytest.raises((EmptyInputError, InvalidIdError)):
        clean_ids(ids)
    with pytest.raises(EmptyInputError):
        clean_ids(ids, IdPolicy(on_invalid="skip"))


def test_floats_and_control_characters_are_invalid():
    with pytest.raises(InvalidIdError):
        clean_ids([1.5e17])
    with pytest.raises(InvalidIdError):
        clean_ids(["ab\x00c"])


def test_bad_policy_is_a_privfin_error():
    with pytest.raises(PrivfinError):
        IdPolicy(case="title")  # type: ignore[arg-type]


_TRICKY = ["  ab1 ", "\x1cid\x1f", "\tX\r\n", "", "   ", None, "a\x00b", "a\x7fb", "a\tb", "lower", "MiXeD",
           "x" * 40, "12345678901234567X", "91350100m000100y43", "11010519491231002x", "~!@#$%^&*()_+"]


@pytest.mark.parametrize("policy", [IdPolicy(on_invalid="skip", duplicates="dedupe"),
                                    IdPolicy(case="lower", on_invalid="skip", duplicates="dedupe"),
                                    IdPolicy(case="keep", strip=False, on_invalid="skip", duplicates="dedupe"),
                                    IdPolicy(checksum="resident_id_or_credit_code", on_invalid="skip")])
def test_vectorized_ascii_path_equals_per_id_path(policy):
    from privfin.psi.ids import _clean_ascii, _clean_each

    rng = random.Random(11)
    ids = _TRICKY + [resident_id(rng) for _ in range(50)] + [credit_code(rng).lower() for _ in range(50)]
    rng.shuffle(ids)
    fast, slow = _clean_ascii(ids, policy), _clean_each(ids, policy)
    assert fast is not None
    assert fast[0].dtype == slow[0].dtype and fast[0].tolist() == slow[0].tolist()
    assert fast[1].tolist() == slow[1].tolist() and fast[2] == slow[2] and fast[3] == slow[3]
    a, b = clean_ids(ids, policy), clean_ids(np.array(ids, dtype=object), policy)
    assert a.values.tolist() == b.values.tolist() and a.report == b.report


def test_non_ascii_or_mixed_types_take_the_per_id_path():
    from privfin.psi.ids import _clean_ascii

    assert _clean_ascii(["ab", "ＣＤ２"], IdPolicy()) is None
    assert _clean_ascii(["ab", 12], IdPolicy()) is None
    assert _clean_ascii(["ab", b"cd"], IdPolicy()) is None
    assert _clean_ascii(["ab", 1.5], IdPolicy()) is None
    c = clean_ids(["ab", "ＣＤ２", 7])
    assert c.values.tolist() == [b"AB", b"CD2", b"7"]


def test_vectorized_path_reports_first_bad_row_and_duplicates():
    with pytest.raises(InvalidIdError, match="2 of 5 .*first at row 1"):
        clean_ids(["a", "", "b", "c\x01", "d"])
    with pytest.raises(DuplicateIdError, match="first repeat at row 3"):
        clean_ids(["a", "b", "c", " A "])
    c = clean_ids(["aa", "b", "aa ", "ccc"], IdPolicy(duplicates="dedupe"))
    assert c.values.tolist() == [b"AA", b"B", b"CCC"] and c.rows.tolist() == [0, 1, 3]
    assert c.values.dtype == np.dtype("S3")


def test_integer_ids_take_the_vectorized_path_with_the_same_result():
    from privfin.psi.ids import _clean_ascii, _clean_each

    ids = [110105194912310021, -5, 0, None, 7, np.int64(42)]
    policy = IdPolicy(on_invalid="skip")
    fast, slow = _clean_ascii(ids, policy), _clean_each(ids, policy)
    assert fast is not None
    assert fast[0].tolist() == slow[0].tolist() == [b"110105194912310021", b"-5", b"0", b"7", b"42"]
    assert fast[1].tolist() == slow[1].tolist() and fast[2] == slow[2] and fast[3] == slow[3] == 3
    assert _clean_ascii([1, True], policy) is None and _clean_ascii([1, "a"], policy) is None
