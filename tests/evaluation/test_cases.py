"""medsr.evaluation.cases: class folders and datalists -> cases, named as training names them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from evaluation_support import fake_factory, write_png

from medsr import evaluation as ev
from medsr.data import build_datalist, load_datalist
from medsr.errors import InputError, UsageError


def test_collect_cases_classes_from_folders(tmp_path: Path, fakes: None) -> None:
    for name in ("Covid/a.png", "Covid/b.png", "Normal/c.png", "loose.png"):
        write_png(tmp_path / "data" / name, seed=len(name))
    cases = ev.collect_cases(tmp_path / "data")
    assert [(c.label, c.path.name) for c in cases] == [("Covid", "a.png"), ("Covid", "b.png"), ("Normal", "c.png"), ("all", "loose.png")]


def test_collect_cases_datalists(tmp_path: Path, fakes: None) -> None:
    write_png(tmp_path / "img" / "x.png")
    write_png(tmp_path / "img" / "y.png", seed=2)
    (tmp_path / "list.csv").write_text("image,class,modality\nimg/x.png,Covid,xray\nimg/y.png,Normal,\n")
    cases = ev.collect_cases(tmp_path / "list.csv")
    assert [(c.path.name, c.label, c.modality) for c in cases] == [("x.png", "Covid", "xray"), ("y.png", "Normal", None)]
    (tmp_path / "list.json").write_text(json.dumps({"testing": [{"image": "img/x.png"}]}))
    (case,) = ev.collect_cases(tmp_path / "list.json", modality="xray")
    assert case.label == "all" and case.modality == "xray" and case.path == tmp_path / "img" / "x.png"
    (tmp_path / "bad.csv").write_text("file\nimg/x.png\n")
    with pytest.raises(InputError, match="`image`"):
        ev.collect_cases(tmp_path / "bad.csv")
    (tmp_path / "badmod.csv").write_text("image,modality\nimg/x.png,pet\n")
    with pytest.raises(UsageError, match="modality"):
        ev.collect_cases(tmp_path / "badmod.csv")


def test_training_and_evaluation_name_a_covid_folder_identically(tmp_path: Path) -> None:
    """One class-naming rule: a lower-case ``covid/`` folder is ``Covid`` for training and for evaluation."""
    for name in ("covid/a.png", "COVID-19/b.png", "normal/c.png", "Other/d.png"):
        write_png(tmp_path / "data" / name, seed=len(name))
    training = {Path(e["image"]).name: e["class"] for e in build_datalist(tmp_path / "data")}
    evaluation = {c.path.name: c.label for c in ev.collect_cases(tmp_path / "data")}
    assert training == evaluation == {"a.png": "Covid", "b.png": "Covid", "c.png": "Normal", "d.png": "Other"}
    # a datalist is parsed and its classes named by the same rules, for training and for evaluation
    rows = [{"image": f"data/{k}", "class": k.split("/")[0], "modality": "xray"} for k in ("covid/a.png", "normal/c.png")]
    (tmp_path / "list.json").write_text(json.dumps(rows))
    training = {Path(e["image"]).name: e["class"] for e in load_datalist(tmp_path / "list.json")}
    evaluation = {c.path.name: c.label for c in ev.collect_cases(tmp_path / "list.json")}
    assert training == evaluation == {"a.png": "Covid", "c.png": "Normal"}


def test_evaluation_reports_the_training_class_name(tmp_path: Path, fakes: None) -> None:
    """With ``show_ids`` (labels shown as they are) a ``covid/`` folder is still reported as ``Covid``."""
    for i in range(2):
        write_png(tmp_path / "data" / "covid" / f"{i}.png", seed=i)
    ev.run_evaluation(tmp_path / "data", tmp_path / "out", show_ids=True, progress=False, report=False, n_resamples=50,
                      upscaler_factory=fake_factory)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert {g["class"] for g in summary["groups"]} == {"Covid", "all"}  # the class, and the modality pooled
