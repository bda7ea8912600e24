"""$MEMSWEEP_FUZZ_SCALE: the fuzz tests' example counts scaled for a long run, a typo refused."""

from __future__ import annotations

import pytest

from tests.fuzzing import FUZZ_SCALE_ENV, examples


def test_given_no_scale_then_the_ci_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FUZZ_SCALE_ENV, raising=False)
    assert examples(25) == 25


def test_given_a_scale_then_every_count_times_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FUZZ_SCALE_ENV, "320")
    assert (examples(25), examples(100)) == (8_000, 32_000)


@pytest.mark.parametrize("given", ["abc", "0", "-3", "2.5", "10001"])
def test_given_a_scale_that_is_not_a_whole_number_in_range_then_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.setenv(FUZZ_SCALE_ENV, given)
    with pytest.raises(ValueError, match=rf"^{FUZZ_SCALE_ENV}='{given}': expected a whole number"):
        examples(25)
