"""The memory suites (`neuromem evaluate RUN --capacity --retention --interference --few-shot`) honour --device
(issue 29): the cell's networks and the copies the suites train are moved to the device given, batches follow them
there and results come back to the CPU; tested with the CPU, the one device this machine has. `--device cuda`
where torch sees no CUDA device is one line and exit 2, before any cell is read."""

from __future__ import annotations

import sqlite3

import pytest
import torch

from conftest import run_cli

SUITES = ["--capacity", "--retention", "--interference", "--few-shot", "--suite-epochs", "1", "--episodes", "2"]


def _invoke(*args: str):
    from typer.testing import CliRunner

    from neuromem.cli import _register_commands, app

    _register_commands()
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: --device cuda is valid here")
def test_suites_with_cuda_where_there_is_none_is_one_line(tmp_path):
    result = run_cli("evaluate", str(tmp_path / "RUN"), "--capacity", "--device", "cuda", timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "--device cuda: CUDA is not available on this machine; valid: auto, cpu" in lines[0]


def test_suites_run_their_networks_and_copies_on_the_device_given(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROMEM_HOME", str(tmp_path / "home"))
    out = tmp_path / "run"
    code, output = _invoke("ablate", "--modality", "shd", "--memory", "hopfield", "--epochs", "1", "--hidden", "16",
                           "--batch-size", "16", "--max-train-samples", "40", "--threads", "1", "--device", "cpu",
                           "--data-root", str(tiny_data), "--out", str(out))
    assert code == 0, output
    from neuromem.study.suites import context

    devices, contexts = [], []
    original_to, original_init = torch.nn.Module.to, context.CellContext.__init__

    def to(module, *args, **kwargs):
        devices.append(args[0] if args else kwargs.get("device"))
        return original_to(module, *args, **kwargs)

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        contexts.append(self)

    monkeypatch.setattr(torch.nn.Module, "to", to)
    monkeypatch.setattr(context.CellContext, "__init__", init)
    code, output = _invoke("evaluate", str(out), *SUITES, "--device", "cpu")
    assert code == 0 and "memory suites (capacity, retention, interference, few-shot): 4 (cell, suite)" in output, output
    assert "run on the CPU" not in output  # no longer a note that the device was ignored
    assert [c.device for c in contexts] == [torch.device("cpu")]
    moved = [d for d in devices if isinstance(d, torch.device) and d.type == "cpu"]
    # the cell's network (load_cell) and the interference copies of both protocols that apply to shd
    assert len(moved) >= 3, devices
    with sqlite3.connect(out / "results.sqlite") as db:
        suites = {r[0] for r in db.execute("SELECT DISTINCT suite FROM suite_results")}
    assert suites == {"capacity", "retention", "interference", "few-shot"}
