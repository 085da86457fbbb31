"""benchmarks/label_check.py: the --weights option that changes the fit's weights, and --rescore
with corrected labels."""
import json
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


def test_rescore_takes_corrected_labels_from_the_labels_file(tmp_path, capsys):
    # Two saved faces of one run: both eyes shut in frame 50, first labelled a right wink.
    shut = {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0, "eyeLookDownLeft": 0.0,
            "eyeLookDownRight": 0.0}
    saved = {"commit": "abc", "results": [
        {"video": "videos/x.mp4", "frame": 50, "label": "wink_right", "face": 0, "note": "",
         "front_end": "mediapipe", "weights": shut, "top3": []},
        {"video": "videos/x.mp4", "frame": 60, "label": "eyes_closed", "face": 0, "note": "",
         "front_end": "mediapipe", "weights": shut, "top3": []}]}
    run = tmp_path / "run.json"
    run.write_text(json.dumps(saved))
    labels = tmp_path / "frames.csv"
    labels.write_text("video,frame,label,face,note\n"
                      "videos/x.mp4,50,eyes_closed,0,blink: both lids down\n")
    module = _module()
    module.rescore(str(run))
    before = capsys.readouterr().out
    assert "| x.mp4 | 50 | wink_right | FAIL" in before and "| all | | 1/2 |" in before
    module.rescore(str(run), str(labels))
    after = capsys.readouterr().out
    assert "| x.mp4 | 50 | eyes_closed | pass" in after and "| all | | 2/2 |" in after
