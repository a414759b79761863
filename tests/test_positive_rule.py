"""The disease or abnormal class is positive; healthy/normal/benign/stable names are negative; ambiguous labels
need --positive (issue #28)."""

import pytest

from vitfeat.evaluation.positive import positive_class, positive_reason


@pytest.mark.parametrize("classes, positive", [
    (["normal", "vitiligo"], "vitiligo"), (["Healthy", "lesion"], "lesion"), (["control", "disease"], "disease"),
    (["melanoma", "nevus"], "melanoma"), (["non-stable", "stable"], "non-stable"), (["active", "stable"], "active"),
    (["benign", "suspicious"], "suspicious"), (["normal", "vitiligo-like"], "vitiligo-like"),
])
def test_disease_names_are_positive_and_healthy_names_negative(classes, positive):
    # the majority/minority split must not matter
    assert positive_class(classes, y=[classes[0]] * 9 + [classes[1]], strict=True) == positive
    assert positive_class(classes, y=[classes[1]] * 9 + [classes[0]], strict=True) == positive


def test_ambiguous_labels_are_refused_when_strict_and_explicit_wins():
    for classes in (["high", "low"], ["active", "progressive"], ["normal", "healthy"]):
        with pytest.raises(ValueError, match="pass --positive"):
            positive_class(classes, strict=True, target="t")
    assert positive_class(["normal", "vitiligo"], explicit="normal", strict=True) == "normal"


def test_the_reason_names_the_rule():
    assert "disease or abnormal" in positive_reason(["normal", "vitiligo"], "vitiligo")
    assert "the other class, 'benign', names the healthy" in positive_reason(["benign", "suspicious"], "suspicious")
    assert "--positive" in positive_reason(["normal", "vitiligo"], "normal", explicit="normal")
