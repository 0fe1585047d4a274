"""Chaos scenarios are chosen by name; their old numbers stay accepted as aliases."""

from __future__ import annotations

import pytest

from ops.chaos.run import SCENARIOS, names_in_order, resolve


def test_names_and_numbers_choose_the_same_scenario() -> None:
    """`-s duplicates` and `-s 6` name one scenario; the answer is always the name."""
    assert resolve(["duplicates"]) == resolve(["6"]) == ["duplicates"]
    assert resolve(["kill", "13"]) == ["kill", "retry-after"]


def test_all_scenarios_run_in_the_order_of_their_numbers() -> None:
    """No choice means every scenario, ordered as the numbers were (1 kill ... 13 retry-after)."""
    assert resolve([]) == names_in_order()
    numbers = [SCENARIOS[name][0] for name in names_in_order()]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert names_in_order()[0] == "kill"


@pytest.mark.parametrize("given", ["0", "99", "nope"])
def test_an_unknown_scenario_lists_the_known_ones(given: str) -> None:
    """An unknown name or number is refused with every name and number listed."""
    with pytest.raises(ValueError, match="known: kill \\(1\\)"):
        resolve([given])
