import math

import pytest

from spillover.stats import mcnemar_exact, wilson_interval


def test_wilson_known_values():
    # Reference values (Wilson 1927 / Newcombe 1998, table I): 81/263 -> 0.2553, 0.3662
    lo, hi = wilson_interval(81, 263)
    assert lo == pytest.approx(0.2553, abs=1e-4) and hi == pytest.approx(0.3662, abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_mcnemar_exact():
    before = [True] * 10 + [False] * 5
    after = [False] * 8 + [True] * 2 + [False] * 4 + [True]
    lost, gained, p = mcnemar_exact(before, after)
    assert (lost, gained) == (8, 1)
    # two-sided exact binomial p for 8 of 9 discordant pairs = 2 * P(X>=8 | 9, 0.5) = 20/512
    assert p == pytest.approx(20 / 512)
    assert mcnemar_exact([True], [True])[2] == 1.0
