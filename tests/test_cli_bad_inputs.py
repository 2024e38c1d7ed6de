"""Bad command-line input gets one clear line and a non-zero exit, never a traceback
(issue 17; the serve-model cases live with the server)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from openvirl.cli import app


def _run(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    return result, " ".join(result.output.replace("│", " ").split())


@pytest.mark.parametrize("spec", ["hf:/nonexistent", "hf:./no/such/model", "hf:~/no-such-model"])
def test_missing_hf_path_says_so(tmp_path, spec):
    result, text = _run("eval", "--policy", spec, "--episodes", "1", "--out", str(tmp_path / "r"))
    assert result.exit_code == 2
    assert "does not exist" in text and "Repo id" not in text


def test_hf_path_that_is_a_file(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    result, text = _run("eval", "--policy", f"hf:{weights}", "--out", str(tmp_path / "r"))
    assert result.exit_code == 2 and "is a file" in text


def test_points_solve_with_too_many_numbers():
    result, text = _run("points", "solve", "1", "2", "3", "4", "5", "6", "7")
    assert result.exit_code == 2 and "1 to 6 values, got 7" in text


def test_navigate_routes_negative_n_fails(tmp_path):
    out = tmp_path / "routes.jsonl"
    result, _ = _run("navigate", "routes", "--n", "-1", "--out", str(out))
    assert result.exit_code != 0 and not out.exists()


def test_generate_routes_rejects_negative_n():
    from openvirl.envs.navigation.routes import generate_routes

    with pytest.raises(ValueError, match=r"`n`.*>= 0"):
        generate_routes("monaco", -1)


def test_route_optimizer_unknown_city_names_the_city():
    result, text = _run("agent", "route-optimizer", "--city", "atlantis")
    assert result.exit_code == 2
    assert "Unknown city `atlantis`" in text and "manhattan" in text and "monaco" in text
    assert "places to visit" not in text
    # A known city other than the demo's still asks for the places.
    result, text = _run("agent", "route-optimizer", "--city", "monaco")
    assert result.exit_code == 2 and "places to visit" in text
