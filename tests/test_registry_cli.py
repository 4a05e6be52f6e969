"""The registry's CLI commands and quickstart."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ferrostore.registry as mlflow
from ferrostore import errors
from ferrostore.cli.registry_commands import add_registry_commands
from ferrostore.registry import tracking

pytest.importorskip("sklearn")


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    tracking._reset_for_tests()
    yield
    tracking._reset_for_tests()


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="ferrostore")
    add_registry_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.run(args))


def test_quickstart_then_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ferrostore.cli.quickstart_registry import run_registry_quickstart

    rng = np.random.default_rng(1)
    X = pd.DataFrame({"amount": rng.normal(size=80), "count": rng.normal(size=80)})
    y = (X["amount"] > 0).astype(int)
    uri = str(tmp_path / ".ferrostore")
    name, next_step = run_registry_quickstart(Path(uri), X, y, first_step=6)
    assert next_step == 11
    out = capsys.readouterr().out
    for step in ("6. ", "7. ", "8. ", "9. ", "10. "):
        assert step in out

    assert _cli("runs", "list", "--tracking-uri", uri) == 0
    assert "train-fraud" in capsys.readouterr().out
    assert _cli("models", "list", "--tracking-uri", uri) == 0
    assert "Production:v1" in capsys.readouterr().out

    mlflow.set_tracking_uri(uri)
    run = mlflow.search_runs(search_all_experiments=True, output_format="list")[0]
    mlflow.register_model(f"runs:/{run.info.run_id}/model", name)  # type: ignore[union-attr]
    assert _cli("models", "promote", name, "2", "--alias", "challenger", "--tracking-uri", uri) == 0
    assert _cli("models", "promote", name, "2", "staging", "--approved-by", "dana",
                "--tracking-uri", uri) == 0  # fmt: skip
    capsys.readouterr()
    assert _cli("models", "show", name, "--tracking-uri", uri) == 0
    shown = capsys.readouterr().out
    assert "challenger" in shown and "dana" in shown and "None -> Staging" in shown

    with pytest.raises(errors.NotFound, match="'ghost'"):
        _cli("models", "show", "ghost", "--tracking-uri", uri)
    with pytest.raises(errors.InvalidArgument, match="'Bogus'"):
        _cli("models", "promote", name, "1", "Bogus", "--tracking-uri", uri)
    with pytest.raises(errors.InvalidArgument, match="STAGE or --alias"):
        _cli("models", "promote", name, "1", "--tracking-uri", uri)
