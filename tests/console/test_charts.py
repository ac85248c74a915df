"""The SVG charts: well-formed, scaled to a round maximum, escaped, and gaps for missing data."""

import xml.etree.ElementTree as ET

from console.charts import Series, _nice_max, bar_chart, line_chart

SVG = "{http://www.w3.org/2000/svg}"


def test_bar_chart_is_well_formed_svg_with_one_bar_per_nonzero_value():
    """Stacked bars: one rect per non-zero value, each with a tooltip naming label, series and value."""
    svg = bar_chart(["a", "b"], [Series("ok", [3, 0], "s-ok"), Series("fail", [1, 2], "s-fail")], title="T")
    root = ET.fromstring(svg)
    bars = [r for r in root.iter(f"{SVG}rect") if "bar" in r.get("class", "")]
    assert len(bars) == 3
    assert {b.find(f"{SVG}title").text for b in bars} == {"a: ok 3", "a: fail 1", "b: fail 2"}


def test_text_is_escaped():
    """Labels and titles cannot inject markup."""
    svg = bar_chart(["<script>"], [Series("<b>", [1], "s-ok")], title="a & b")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    ET.fromstring(svg)


def test_line_chart_breaks_at_missing_values():
    """A None value splits the line into two polylines."""
    svg = line_chart(["1", "2", "3", "4"], [Series("rate", [0.5, None, 0.7, 0.8], "s-ok")], title="T", y_max=1)
    root = ET.fromstring(svg)
    assert len(list(root.iter(f"{SVG}polyline"))) == 2
    assert len(list(root.iter(f"{SVG}circle"))) == 3


def test_axis_maximum_is_a_round_number():
    """The y axis tops out at 1, 2 or 5 times a power of ten."""
    assert [_nice_max(v) for v in (0, 0.3, 7, 13, 180, 999)] == [1, 0.5, 10, 20, 200, 1000]
