"""The one patient-split helper (vitfeat.evaluation.folds.grouped_split) on scikit-learn splitters."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from vitfeat.evaluation.folds import grouped_split


def _cases(n_patients=30, per_patient=2, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.choice(["non-stable", "stable"], n_patients)
    return [SimpleNamespace(patient_id=f"P{p:02d}", label=labels[p], case_id=f"P{p:02d}_{k}")
            for p in range(n_patients) for k in range(per_patient)]


@pytest.mark.parametrize("stratified", [True, False])
def test_whole_patients_stay_on_one_side(stratified):
    cases = _cases()
    groups = [c.patient_id for c in cases]
    train, val = grouped_split(groups, [c.label for c in cases] if stratified else None, val_fraction=0.2, seed=1)
    assert set(train).isdisjoint(val) and len(train) + len(val) == len(cases)
    assert {groups[i] for i in train}.isdisjoint({groups[i] for i in val})
    assert 0.1 < len(val) / len(cases) < 0.35


def test_stratified_split_keeps_both_classes_in_validation():
    cases = _cases(40)
    _, val = grouped_split([c.patient_id for c in cases], [c.label for c in cases], val_fraction=0.25, seed=0)
    assert {cases[i].label for i in val} == {"non-stable", "stable"}


def test_a_single_patient_cannot_be_split():
    with pytest.raises(ValueError, match="at least 2 patients"):
        grouped_split(["P1", "P1", "P1"])


def test_the_deep_splits_are_this_helper(seed=3):
    """VMTL's inner validation split and YOLO's val split give the same parts as the shared helper,
    so switching their call sites to it keeps every figure."""
    pytest.importorskip("torch")
    from vitfeat.deep.vmtl.train import inner_split
    from vitfeat.deep.yolo import grouped_split as yolo_split

    cases = _cases(24)
    tr, va = inner_split(cases, 0.2, seed)
    train, val = grouped_split([c.patient_id for c in cases], [c.label for c in cases], val_fraction=0.2, seed=seed)
    assert [c.case_id for c in tr] == [cases[i].case_id for i in train]
    assert [c.case_id for c in va] == [cases[i].case_id for i in val]

    frame = pd.DataFrame({"patient_id": [c.patient_id for c in cases]})
    split = yolo_split(frame, val_fraction=0.2, seed=seed)
    train, val = grouped_split(frame["patient_id"], val_fraction=0.2, seed=seed)
    assert sorted(np.flatnonzero(split.to_numpy() == "val")) == sorted(val)


def test_three_way_split_keeps_patients_whole_and_is_what_the_segmenters_use():
    pytest.importorskip("torch")
    from vitfeat.deep.segmentation import data as segdata

    cases = _cases(20, per_patient=3)
    groups = [c.patient_id for c in cases]
    train, val, test = grouped_split(groups, val_fraction=0.15, test_fraction=0.15, seed=2)
    sides = [{groups[i] for i in part} for part in (train, val, test)]
    assert all(sides) and sides[0].isdisjoint(sides[1]) and sides[0].isdisjoint(sides[2])
    assert sides[1].isdisjoint(sides[2]) and len(train) + len(val) + len(test) == len(cases)
    assert len(sides[2]) == 3 and len(sides[1]) == 3  # 15 % of 20 patients, rounded up, each

    items = [segdata.SegItem(c.case_id, c.patient_id, None, None) for c in cases]
    split = segdata.grouped_split(items, (0.7, 0.15, 0.15), seed=2)["split"].to_numpy()
    for name, part in zip(("train", "val", "test"), (train, val, test)):
        assert sorted(np.flatnonzero(split == name)) == sorted(part)


def test_three_way_split_with_two_patients_has_no_test_part():
    train, val, test = grouped_split(["P1", "P1", "P2"], val_fraction=0.5, test_fraction=0.2, seed=0)
    assert len(test) == 0 and len(train) and len(val)
