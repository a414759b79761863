"""The one-loop rule (issue #26): under vitfeat/deep only training.py loops over batches calling an
optimiser's ``step()``, and only it defines ``autocast``; every deep model trains through
:class:`vitfeat.deep.training.TrainingLoop` with its differences as settings and callbacks."""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import vitfeat.deep

DEEP = Path(vitfeat.deep.__file__).parent
OPTIMISER = re.compile(r"optim|(^|\.)opt$|scaler", re.IGNORECASE)


def optimiser_steps_in_loops(source: str) -> list[int]:
    """Lines of ``<optimiser>.step(...)`` calls inside a for/while loop (or a comprehension)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.For, ast.AsyncFor, ast.While, ast.comprehension)):
            continue
        for inner in ast.walk(node):
            if (isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute) and inner.func.attr == "step"
                    and OPTIMISER.search(ast.unparse(inner.func.value))):
                found.append(inner.lineno)
    return sorted(set(found))


def test_the_detector_finds_an_epoch_loop_and_ignores_schedulers():
    loop = textwrap.dedent("""
        def fit(model, loader, optimizer, scheduler):
            for batch in loader:
                optimizer.zero_grad()
                model(batch).backward()
                optimizer.step()
            scheduler.step()
    """)
    assert optimiser_steps_in_loops(loop) == [6]
    assert optimiser_steps_in_loops(loop.replace("optimizer.step()", "self.opt.step()")) == [6]
    assert optimiser_steps_in_loops(loop.replace("optimizer.step()", "pass")) == []


def test_only_training_py_holds_an_optimiser_loop():
    modules = sorted(DEEP.rglob("*.py"))
    assert len(modules) > 10 and (DEEP / "training.py") in modules
    assert optimiser_steps_in_loops((DEEP / "training.py").read_text())  # the one loop is found where it is
    offenders = {str(p.relative_to(DEEP)): lines for p in modules if p.name != "training.py" or p.parent != DEEP
                 for lines in [optimiser_steps_in_loops(p.read_text())] if lines}
    assert offenders == {}, f"epoch loops outside vitfeat/deep/training.py (train through TrainingLoop): {offenders}"


def test_only_training_py_defines_autocast():
    defined = [str(p.relative_to(DEEP)) for p in sorted(DEEP.rglob("*.py"))
               for node in ast.walk(ast.parse(p.read_text()))
               if isinstance(node, ast.FunctionDef) and node.name == "autocast"]
    assert defined == ["training.py"]


def _tiny_loop(settings, step, validate, params):
    import torch

    from vitfeat.deep.training import TrainingLoop

    module = torch.nn.Module()
    for name, p in params.items():
        module.register_parameter(name, p)
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    return TrainingLoop({"model": module}, opt, None, settings, make_batches=lambda epoch, seed: [0],
                        step=step, validate=validate)


def test_mode_max_keeps_the_highest_epoch_and_counts_patience_from_it():
    import torch

    from vitfeat.deep.training import LoopSettings, StepOutput

    w = torch.nn.Parameter(torch.zeros(1))
    scores = iter([0.2, 0.5, 0.4, 0.45, 0.9])
    loop = _tiny_loop(LoopSettings(epochs=5, first_epoch=0, monitor="val_psr", mode="max", patience=2),
                      lambda batch: StepOutput((w - 1).pow(2).sum(), 1),
                      lambda epoch: {"val_psr": next(scores)}, {"w": w})
    result = loop.run()
    assert (result.best_epoch, result.best_value) == (1, 0.5)
    assert result.stopped_early and len(result.history) == 4  # 0.4 and 0.45 are not above 0.5


def test_repair_grads_steps_past_an_infinite_gradient_that_otherwise_skips_the_batch():
    import torch

    from vitfeat.deep.training import LoopSettings, StepOutput

    moved = {}
    for repair in (False, True):
        good, bad = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
        # sqrt at 0: a finite loss whose gradient is infinite in one of the two tensors
        loop = _tiny_loop(LoopSettings(epochs=1, clip_norm=1.0, repair_grads=repair),
                          lambda batch, good=good, bad=bad: StepOutput((good - 1).pow(2).sum() + bad.sqrt().sum(), 1),
                          lambda epoch: {"val_loss": 0.0}, {"good": good, "bad": bad})
        loop.run()
        assert torch.isfinite(good).all() and torch.isfinite(bad).all()
        moved[repair] = float(good.detach()) != 0.0
        assert loop.skipped_batches == (0 if repair else 1)
    assert moved == {False: False, True: True}
