"""benchmarks/label_check.py: the --weights option that changes the fit's weights."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks", "label_check.py")


def _module():
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import label_check
    return label_check


def test_weights_are_parsed_into_fit_weight_fields():
    assert _module().parse_weights("eye_shut=1,sp=0.3") == {"eye_shut": 1.0, "sp": 0.3}
    assert _module().parse_weights("") == {}


@pytest.mark.parametrize("text, message", [
    ("bogus=1", "unknown fit weight 'bogus'"),
    ("sp=high", "'sp=high' is not NAME=NUMBER"),
])
def test_a_bad_weight_is_one_line_naming_it(text, message):
    with pytest.raises(SystemExit, match=message):
        _module().parse_weights(text)


def test_weights_need_the_fit():
    done = subprocess.run([sys.executable, SCRIPT, "--method", "net", "--weights", "sp=1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "label_check: --weights changes the fit's weights; it needs --method fit"]
