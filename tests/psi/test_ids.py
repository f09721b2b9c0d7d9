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
