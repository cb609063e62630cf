"""SVG depiction for the web console."""

import pytest

from chemistry.depiction import svg
from chemistry.errors import InvalidStructureError
from chemistry.structures import parse

FENTANYL = parse("CCC(=O)N(c1ccccc1)C1CCN(CCc2ccccc2)CC1")


def test_svg_is_an_inline_svg_element_without_xml_prolog() -> None:
    drawing = svg(FENTANYL, width=320, height=200)
    assert drawing.lstrip().startswith("<svg")
    assert "<?xml" not in drawing
    assert "width='320px'" in drawing


def test_highlighting_a_substructure_changes_the_drawing() -> None:
    plain = svg(FENTANYL)
    highlighted = svg(FENTANYL, highlight_smarts="C1CCNCC1")
    assert highlighted != plain
    assert highlighted.count("<path") >= plain.count("<path")


def test_an_invalid_highlight_smarts_is_rejected() -> None:
    with pytest.raises(InvalidStructureError):
        svg(FENTANYL, highlight_smarts="C1CC(")
