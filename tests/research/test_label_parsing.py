"""One label parser: evaluate's label probe and the app's "colour by label" read chip labels alike."""

from __future__ import annotations

from clay_explore.research.metrics import LABEL_COLUMNS, label_column, primary_labels


def test_label_column_prefers_labels_then_label() -> None:
    assert label_column(["chip_id", "label", "labels"]) == "labels"
    assert label_column(["chip_id", "label"]) == "label"
    assert label_column(["chip_id"]) is None
    assert LABEL_COLUMNS[0] == "labels"


def test_lists_json_and_separated_strings_give_the_first_label() -> None:
    raw = [["forest", "water"], '["crop", "urban"]', "marsh; bay", "a|b", "", None, []]
    assert primary_labels(raw) == ["forest", "crop", "marsh", "a", None, None, None]
