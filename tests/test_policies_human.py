"""HumanPolicy: what it shows, how it reads answers, and what happens at end of input."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from openvirl.policies.base import PolicyError, text_message
from openvirl.policies.human import HumanPolicy


def _conversation(image=None):
    return [
        text_message("user", "Cards: K 3 7 Q. Reach 24.", image=image),
        text_message("assistant", "1+1=2"),
        text_message("user", "You failed this trial because the value is 2."),
    ]


def test_multiline_answers_end_at_an_empty_line(tmp_path):
    stdin = io.StringIO("7+10+10-3=24\nsecond line\n\nnext answer\n")
    stdout = io.StringIO()
    policy = HumanPolicy(input_stream=stdin, output_stream=stdout, image_dir=tmp_path)
    requests = [{"messages": _conversation()}, {"messages": [text_message("user", "Go")]}]
    assert policy.act(requests) == ["7+10+10-3=24\nsecond line", "next answer"]
    shown = stdout.getvalue()
    assert "request 1 of 2 (turn 2; earlier turns not shown)" in shown
    assert "You failed this trial because the value is 2." in shown
    assert "Cards: K 3 7 Q" not in shown  # only the last user message is printed
    assert "end with an empty line" in shown


def test_single_line_mode_and_images_saved_as_png(tmp_path):
    stdin = io.StringIO("  left \nignored\n")
    stdout = io.StringIO()
    policy = HumanPolicy(
        multiline=False, input_stream=stdin, output_stream=stdout, image_dir=tmp_path
    )
    image = Image.new("RGB", (6, 4), (9, 8, 7))
    assert policy.act([{"messages": [text_message("user", "Where now?", image=image)]}]) == ["left"]
    saved = tmp_path / "image-0001.png"
    assert f"[image: {saved}]" in stdout.getvalue()
    assert Image.open(saved).getpixel((0, 0)) == (9, 8, 7)


def test_end_of_input_raises_policy_error():
    policy = HumanPolicy(input_stream=io.StringIO(""), output_stream=io.StringIO())
    with pytest.raises(PolicyError, match="end of its input"):
        policy.act([{"messages": [text_message("user", "?")]}])
    empty_answer = HumanPolicy(input_stream=io.StringIO("\n"), output_stream=io.StringIO())
    assert empty_answer.act([{"messages": [text_message("user", "?")]}]) == [""]
