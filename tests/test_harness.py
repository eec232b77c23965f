"""The test harness itself: a missing browser skips its tests, except under CI=true where it fails them."""
import pytest

from tests.conftest import no_browser


@pytest.mark.parametrize("ci, outcome", [("true", pytest.fail.Exception), ("1", pytest.fail.Exception),
                                         ("", pytest.skip.Exception), ("false", pytest.skip.Exception)])
def test_a_missing_browser_skips_except_under_ci(monkeypatch, ci, outcome):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="Chromium is not installed"):
        no_browser("Chromium is not installed")
