"""The shared deep training loop (vitfeat/deep/training.py) on a tiny regression model."""

from __future__ import annotations

import pytest
import torch

from vitfeat.deep.training import LoopSettings, StepOutput, TrainingLoop

X = torch.linspace(-1, 1, 32).reshape(-1, 1)
Y = 3 * X + 0.5


def _loop(tmp_path, epochs=4, poison_batch=None, flat=False, **settings):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    calls = {"n": 0}

    def batches(epoch, seed):
        order = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))
        return [order[i:i + 8] for i in range(0, len(X), 8)]

    def step(index):
        calls["n"] += 1
        loss = torch.nn.functional.mse_loss(model(X[index]), Y[index])
        if poison_batch is not None and calls["n"] == poison_batch:
            loss = loss * float("nan")
        return StepOutput(loss, len(index))

    def validate(epoch):
        if flat:  # a validation loss that never improves after the first epoch
            return {"val_loss": 1.0}
        model.eval()
        with torch.no_grad():
            return {"val_loss": float(torch.nn.functional.mse_loss(model(X), Y))}

    return model, TrainingLoop({"model": model}, optimizer, None, LoopSettings(epochs=epochs, **settings),
                               make_batches=batches, step=step, validate=validate,
                               last_path=tmp_path / "last.pt", best_path=tmp_path / "best.pt", log_dir=tmp_path)


def test_resumed_loop_equals_uninterrupted(tmp_path):
    model_a, straight = _loop(tmp_path / "a")
    (tmp_path / "a").mkdir()
    straight.run()
    (tmp_path / "b").mkdir()
    _, first = _loop(tmp_path / "b", epochs=2)
    first.run()
    model_b, rest = _loop(tmp_path / "b", epochs=4)
    assert rest.resume() and rest.next_epoch == 3
    result = rest.run()
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    assert [r["val_loss"] for r in result.history] == pytest.approx([r["val_loss"] for r in straight.state.history])
    assert all(torch.equal(a, b) for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values()))
    best = torch.load(tmp_path / "b" / "best.pt", weights_only=True)
    assert result.best_epoch == min(result.history, key=lambda r: r["val_loss"])["epoch"]
    assert set(best) == set(model_b.state_dict())


def test_non_finite_batch_is_skipped_not_applied(tmp_path):
    (tmp_path / "p").mkdir()
    model, loop = _loop(tmp_path / "p", epochs=1, poison_batch=2, clip_norm=1.0)
    result = loop.run()
    assert result.skipped_batches == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_patience_stops_early(tmp_path):
    (tmp_path / "s").mkdir()
    _, loop = _loop(tmp_path / "s", epochs=50, patience=2, flat=True)
    result = loop.run()  # epoch 1 sets the best, epochs 2 and 3 do not improve: stop
    assert result.stopped_early and len(result.history) == 3 and result.best_epoch == 1
    with pytest.raises(ValueError, match="precision"):
        LoopSettings(epochs=1, precision="fp8")
