"""Evaluation primitives shared by every layer: patient-grouped fold plans and splits
(:mod:`~vitfeat.evaluation.folds`), scores of out-of-fold predictions (:mod:`~vitfeat.evaluation.metrics`)
and the one positive-class rule (:mod:`~vitfeat.evaluation.positive`).

Part of the core layer: it imports scikit-learn, numpy and pandas, never featurize, pipelines or deep.
"""
