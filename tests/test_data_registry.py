"""The data-set registry: every registered data set goes the whole way (stand-in in its real format,
its reader, tonic, binning, its front end), and a new data set needs nothing but its registry entry."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import tonic
import torch

from neuromem.data import load_split, synthesize
from neuromem.data.base import (
    NO_CONCEPT,
    NUM_CONCEPTS,
    Download,
    EventDataset,
    EventSource,
    StandIn,
    register_dataset,
    unregister_dataset,
)
from neuromem.data.download import fetch
from neuromem.data.registry import DATASET_SPECS, dataset_names, get_dataset
from neuromem.data.specs import DatasetSpec
from neuromem.errors import NeuromemError
from neuromem.models.frontends import build_front_end

TIME_BINS = 6  # short trains keep the forward passes cheap


def _one_per_class(name: str) -> dict[str, int]:
    return {f"{name}_{split}_per_class": 1 for split in get_dataset(name).spec.splits}


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory) -> Path:
    """Every registered data set's default stand-in, one sample per class and split, in one root."""
    root = tmp_path_factory.mktemp("registry") / "data"
    sizes = {key: value for name in dataset_names() for key, value in _one_per_class(name).items()}
    synthesize(root, seed=0, **sizes)
    return root


def _tonic_events(name: str, root: Path, split: str, data_set: EventDataset) -> list[np.ndarray] | None:
    """The same split read by tonic's own classes, where tonic can read the files as they lie."""
    if name in ("shd", "ssc"):
        folder = root / data_set.spec.folder
        zip_name = f"{name}_{split}.h5.zip"
        (folder / zip_name).touch()  # tonic's HSD classes only check that the downloaded zip is there
        try:
            if name == "shd":
                reader = tonic.datasets.SHD(save_to=str(root), train=split == "train")
            else:
                reader = tonic.datasets.SSC(save_to=str(root), split=split)
            return [reader[i][0] for i in range(len(reader))]
        finally:
            (folder / zip_name).unlink()
    if name == "nmnist":  # tonic's NMNIST class wants the original zips; its file reader takes one recording
        return [tonic.io.read_mnist_file(str(path), dtype=tonic.datasets.NMNIST.dtype)
                for path in data_set.files(root, split)]
    return None


@pytest.mark.parametrize("name", dataset_names())
def test_every_data_set_from_stand_in_to_front_end(name, stand_ins, tmp_path):
    data_set = get_dataset(name)
    spec = data_set.spec
    marker = json.loads((stand_ins / "NEUROMEM_SYNTHETIC.json").read_text())
    assert marker["modalities"][name]["kind"] == data_set.default_stand_in
    for split in spec.splits:
        assert all(path.is_file() for path in data_set.files(stand_ins, split))
        source = data_set.read(stand_ins, split)
        assert sorted(source.labels.tolist()) == list(range(spec.num_classes))  # one sample per class
        events = [source.events(i) for i in range(len(source.labels))]
        assert all(len(e) > 0 and {"t", "x", "p"} <= set(e.dtype.names) for e in events)
        assert all(int(e["x"].max()) < spec.sensor_size[0] for e in events)
        by_tonic = _tonic_events(name, stand_ins, split, data_set)
        if by_tonic is not None:
            assert len(by_tonic) == len(events)
            for ours, theirs in zip(events, by_tonic):
                for field in ours.dtype.names:
                    np.testing.assert_array_equal(ours[field], theirs[field])

        binned = load_split(name, stand_ins, split, time_bins=TIME_BINS, cache_dir=tmp_path / "cache")
        assert binned.inputs.shape == (len(events), TIME_BINS, *spec.input_shape)
        np.testing.assert_array_equal(binned.labels, source.labels)
        # every event inside the window is counted once (no bin reaches the uint8 clip here)
        in_window = [int((e["t"] < spec.window_us).sum()) for e in events]
        assert np.asarray(binned.inputs).reshape(len(events), -1).sum(axis=1).tolist() == in_window

    concepts = data_set.concepts(np.arange(spec.num_classes))
    assert concepts.shape == (spec.num_classes,)
    assert set(concepts.tolist()) <= {NO_CONCEPT, *range(NUM_CONCEPTS)}

    torch.manual_seed(0)
    front_end = build_front_end(name, spec.input_shape, hidden=8)
    x, _ = next(iter(binned.subset([0, 1]).batches(2, time_major=True)))
    spikes = front_end(x.transpose(0, 1))  # front ends read (T, batch, ...)
    assert spikes.shape == (TIME_BINS, 2, 8) and torch.isfinite(spikes).all()


def test_ssc_concepts_are_its_digit_words():
    from neuromem.data.sets.ssc import CLASS_NAMES

    ssc = get_dataset("ssc")
    concepts = ssc.concepts(np.arange(len(CLASS_NAMES)))
    words = dict(zip(CLASS_NAMES, concepts.tolist()))
    digits = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    assert [words[w] for w in digits] == list(range(10))
    assert words["dog"] == words["marvin"] == words["backward"] == NO_CONCEPT
    assert (concepts == NO_CONCEPT).sum() == 25
    shd = get_dataset("shd").concepts(np.arange(20))
    assert shd.tolist() == list(range(10)) * 2  # English and German digit d: one concept


def _write_ssc_like(path: Path, keys: list[str], labels: list[int]) -> None:
    """An SSC file written by plain h5py (not neuromem's writer), with its own label -> word table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (len(labels),), dtype=h5py.vlen_dtype(np.float16))
        units = f.create_dataset("spikes/units", (len(labels),), dtype=h5py.vlen_dtype(np.uint16))
        for i in range(len(labels)):
            times[i] = np.array([0.1, 0.2], np.float16)
            units[i] = np.array([i, i + 1], np.uint16)
        f.create_dataset("labels", data=np.asarray(labels, np.uint8))
        f.create_dataset("extra/keys", data=np.array([k.encode() for k in keys]))


def test_ssc_reader_follows_the_files_word_table(tmp_path):
    from neuromem.data.sets.ssc import CLASS_NAMES

    ssc = get_dataset("ssc")
    reordered = list(reversed(CLASS_NAMES))  # file label 0 is "zero", 34 is "backward"
    _write_ssc_like(tmp_path / "r" / "SSC" / "ssc_test.h5", reordered, [0, 34, 25])
    labels = ssc.read(tmp_path / "r", "test").labels
    assert [CLASS_NAMES[i] for i in labels] == ["zero", "backward", reordered[25]]
    assert ssc.concepts(labels)[0] == 0

    _write_ssc_like(tmp_path / "bad" / "SSC" / "ssc_test.h5", ["cheese", *CLASS_NAMES[1:]], [0])
    with pytest.raises(NeuromemError) as error:
        ssc.read(tmp_path / "bad", "test")
    assert "\n" not in str(error.value) and "cheese" in str(error.value) and "ssc_test.h5" in str(error.value)


def test_ssc_fetch_offline_is_one_line(tmp_path):
    with pytest.raises(NeuromemError) as error:
        fetch(tmp_path / "real", "ssc")
    message = str(error.value)
    assert "\n" not in message and "could not download ssc" in message and "ssc_train.h5.zip" in message
    assert "by hand" in message and str(tmp_path / "real" / "SSC") in message


def test_unknown_names_are_one_line_errors(stand_ins):
    with pytest.raises(NeuromemError, match=r"unknown data set 'gesture'; valid data sets: shd, nmnist, ssc"):
        get_dataset("gesture")
    with pytest.raises(NeuromemError, match=r"unknown split 'valid' for shd; valid splits: train, test"):
        load_split("shd", stand_ins, "valid")
    with pytest.raises(NeuromemError, match=r"--kind 'speech' has no stand-in for nmnist"):
        get_dataset("nmnist").stand_in("speech")
    with pytest.raises(NeuromemError, match=r"unknown size 'ssc_extra_per_class'"):
        synthesize(stand_ins, datasets=["ssc"], ssc_extra_per_class=1)


# ---------------------------------------------------------------- a fourth data set needs only its entry


@dataclass(frozen=True)
class ClicksConfig:
    train_per_class: int = 4
    test_per_class: int = 2


def write_clicks(root: Path, seed: int, config: ClicksConfig) -> dict:
    """Class c clicks on channels 4c..4c+3; one .npz per split (t µs, channel, sample index, labels)."""
    summary = {}
    for index, split in enumerate(("train", "test")):
        rng = np.random.default_rng([seed, index])
        per_class = config.train_per_class if split == "train" else config.test_per_class
        labels = np.repeat(np.arange(3), per_class)
        sample = np.repeat(np.arange(len(labels)), 20)
        channel = 4 * labels[sample] + rng.integers(0, 4, len(sample))
        t = rng.integers(0, 60_000, len(sample))
        path = Path(root) / "CLICKS" / f"{split}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, t=t, channel=channel, sample=sample, labels=labels)
        summary[split] = {"samples": len(labels), "events": len(t)}
    return summary


class Clicks(EventDataset):
    spec = DatasetSpec(name="clicks", num_classes=3, input_shape=(12,), sensor_size=(12, 1, 1), time_bins=6,
                       window_us=60_000, folder="CLICKS", description="a toy data set registered by a test")
    front_end = "audio"
    stand_ins = {"toy": StandIn("toy", "random clicks per class", ClicksConfig, write_clicks)}
    default_stand_in = "toy"

    def files(self, root, split):
        path = Path(root) / "CLICKS" / f"{split}.npz"
        if not path.is_file():
            raise NeuromemError(f"missing {path}")
        return [path]

    def read(self, root, split):
        arrays = np.load(self.files(root, split)[0])
        t, channel, sample = arrays["t"], arrays["channel"], arrays["sample"]

        def events(i):
            keep = sample == i
            return tonic.io.make_structured_array(t[keep], channel[keep], 1, dtype=tonic.datasets.hsd.HSD.dtype)

        return EventSource(arrays["labels"].astype(np.int64), events)

    def layout(self, split):
        return f"CLICKS/{split}.npz"

    def downloads(self, root):
        return [Download("all", "https://example.invalid/clicks.zip", lambda: None, "nothing to download")]

    def concepts(self, labels):
        return np.asarray(labels, dtype=np.int64)  # clicks on block c mean digit c


@pytest.fixture
def clicks_registered():
    register_dataset(Clicks)
    try:
        yield get_dataset("clicks")
    finally:
        unregister_dataset("clicks")


def test_a_new_data_set_needs_only_its_entry(clicks_registered, tmp_path):
    from neuromem.train.config import CellConfig
    from neuromem.train.tasks import TASKS, concept_of
    from neuromem.train.trainer import run_cell

    assert "clicks" in DATASET_SPECS and TASKS["clicks"].datasets == ("clicks",)
    root = tmp_path / "data"
    marker = synthesize(root, datasets=["clicks"])
    assert marker["modalities"]["clicks"]["splits"]["train"]["samples"] == 12
    binned = load_split("clicks", root, "train", cache_dir=tmp_path / "cache")
    assert binned.inputs.shape == (12, 6, 12)
    # each class's events land on its own four channels
    per_class = np.asarray(binned.inputs).sum(axis=1).reshape(3, 4, 3, 4).sum(axis=(1, 3))
    assert (per_class == np.diag(np.diag(per_class))).all() and (np.diag(per_class) == 4 * 20).all()
    assert concept_of("clicks", binned.labels).tolist() == binned.labels.tolist()

    spikes = build_front_end("clicks", (12,), hidden=8)(torch.ones(6, 2, 12))
    assert spikes.shape == (6, 2, 8)
    outcome = run_cell(CellConfig(modality="clicks", memory="hopfield", epochs=1, batch_size=4, hidden=8), root)
    assert 0.0 <= outcome.metrics["test_accuracy_clicks"] <= 1.0
    assert outcome.representations["clicks/digits"].tolist() == outcome.representations["clicks/labels"].tolist()

    with pytest.raises(ValueError, match="already registered"):
        register_dataset(Clicks)


def test_entry_naming_an_unknown_front_end_fails_clearly(clicks_registered):
    clicks_registered.front_end = "sonar"
    with pytest.raises(KeyError, match="names front end 'sonar'.*valid: audio, visual"):
        build_front_end("clicks", (12,), hidden=8)


def test_data_package_has_no_import_cycle():
    """Imports among neuromem.data modules (function-level ones included) form no cycle."""
    package = Path(__file__).resolve().parent.parent / "neuromem" / "data"
    modules = {".".join(("neuromem", "data", *p.relative_to(package).with_suffix("").parts)).removesuffix(".__init__"): p
               for p in package.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("neuromem.data"):
                # `from package import module` names submodules; otherwise the import names the module itself
                submodules = {f"{node.module}.{alias.name}" for alias in node.names} & set(modules)
                targets |= submodules or ({node.module} & set(modules))
            elif isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names} & set(modules)
        graph[name] = targets - {name}
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for target in graph.get(node, ()):
            if state.get(target) == 1:
                raise AssertionError(f"import cycle: {' -> '.join([*path, node, target])}")
            if target not in state:
                visit(target, [*path, node])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [])


def test_synth_cli_sizes_and_kinds(tmp_path):
    from typer.testing import CliRunner

    from neuromem.data.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["synth", "--root", str(tmp_path / "d"), "--modality", "ssc", "--size", "ssc.train=1",
                                 "--size", "valid=1", "--size", "test=1", "--kind", "template"])
    assert result.exit_code == 0, result.output
    marker = json.loads((tmp_path / "d" / "NEUROMEM_SYNTHETIC.json").read_text())
    assert {split: c["samples"] for split, c in marker["modalities"]["ssc"]["splits"].items()} == \
        {"train": 35, "valid": 35, "test": 35}
    result = runner.invoke(app, ["synth", "--root", str(tmp_path / "e"), "--modality", "nmnist", "--kind", "speech"])
    assert isinstance(result.exception, NeuromemError) and "valid kinds for nmnist: template" in str(result.exception)
    result = runner.invoke(app, ["synth", "--root", str(tmp_path / "e"), "--modality", "shd", "--size", "valid=2"])
    assert isinstance(result.exception, NeuromemError) and "shd has no split 'valid'" in str(result.exception)
    result = runner.invoke(app, ["kinds"])
    assert result.exit_code == 0 and "ssc" in result.output and "audio" in result.output


def test_a_stand_in_with_its_own_marker_runs_alone(clicks_registered, tmp_path):
    from neuromem.data.base import register_stand_in

    def write_own(root, seed, config):
        counts = write_clicks(root, seed, config)
        marker = {"generator": "a-cached-build", "seed": seed, "modalities": {"clicks": {"splits": counts}}}
        (Path(root) / "NEUROMEM_SYNTHETIC.json").write_text(json.dumps(marker))
        return marker

    register_stand_in("clicks", StandIn("cached", "its own marker", ClicksConfig, write_own, writes_marker=True))
    marker = synthesize(tmp_path / "own", datasets=["clicks"], kinds={"clicks": "cached"}, clicks_train_per_class=2)
    assert marker["generator"] == "a-cached-build" and marker["modalities"]["clicks"]["splits"]["train"]["samples"] == 6
    with pytest.raises(NeuromemError, match="writes a folder of its own"):
        synthesize(tmp_path / "two", datasets=["clicks", "shd"], kinds={"clicks": "cached"})


def test_embedded_default_gains_a_newly_registered_data_set(tmp_path, monkeypatch):
    from neuromem.data.paths import default_embedded_root
    from neuromem.data.roots import resolve_data_root

    monkeypatch.setenv("NEUROMEM_HOME", str(tmp_path / "home"))
    root = default_embedded_root()
    sizes = {key: value for name in dataset_names() for key, value in _one_per_class(name).items()}
    synthesize(root, seed=0, **sizes)  # an embedded default written before the new data set existed
    shd_file = root / "SHD" / "shd_train.h5"
    before = shd_file.stat().st_mtime_ns
    assert resolve_data_root(None) == (root, "synthetic")
    register_dataset(Clicks)
    try:
        assert resolve_data_root(None) == (root, "synthetic")
        marker = json.loads((root / "NEUROMEM_SYNTHETIC.json").read_text())
        assert set(marker["modalities"]) == {*dataset_names()} and (root / "CLICKS" / "train.npz").is_file()
        assert shd_file.stat().st_mtime_ns == before  # the others are kept, not rewritten
    finally:
        unregister_dataset("clicks")


def test_lazy_package_names_are_not_submodule_names():
    import neuromem.data as data

    package = Path(data.__file__).parent
    submodules = {p.stem for p in package.glob("*.py")} | {p.name for p in package.iterdir() if p.is_dir()}
    assert not set(data.__all__) & submodules  # `from neuromem.data import x` would give the module once imported
    for name in data.__all__:
        assert getattr(data, name) is not None
