"""EstimatedCountPaginator: the planner's estimate for a big unfiltered table, a capped count otherwise."""

import pytest
from django.db import connection
from django.utils.html import format_html

from builds.models import BuildAccessLog
from honua.admin_utils import EstimatedCountPaginator, capped_count, estimated_row_count, html_table
from tests.console.factories import AccessLogFactory


def _analyze():
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE build_access_log")


class SmallPaginator(EstimatedCountPaginator):
    exact_below = 10
    cap = 5


@pytest.mark.django_db
def test_estimate_after_analyze_is_the_row_count():
    """After ANALYZE the estimate of a small table is its row count."""
    AccessLogFactory.create_batch(12)
    _analyze()
    assert estimated_row_count(BuildAccessLog) == 12


@pytest.mark.django_db
def test_unfiltered_big_table_uses_the_estimate(django_assert_num_queries):
    """Unfiltered, at or above exact_below rows: one catalog query and no count of the table."""
    AccessLogFactory.create_batch(12)
    _analyze()
    AccessLogFactory.create_batch(3)  # not yet in the statistics
    paginator = SmallPaginator(BuildAccessLog.objects.all(), 2)
    with django_assert_num_queries(1) as captured:
        assert paginator.count == 12
    assert "count(" not in captured.captured_queries[0]["sql"].lower()


@pytest.mark.django_db
def test_filtered_queryset_gets_a_capped_exact_count():
    """Filtered: counts exactly up to the cap, and never past it."""
    AccessLogFactory.create_batch(3, hit=True)
    AccessLogFactory.create_batch(8, hit=False)
    assert SmallPaginator(BuildAccessLog.objects.filter(hit=True), 2).count == 3
    assert SmallPaginator(BuildAccessLog.objects.filter(hit=False), 2).count == 5
    assert capped_count(BuildAccessLog.objects.all(), 100) == 11


@pytest.mark.django_db
def test_small_table_is_counted_exactly():
    """Below exact_below rows the estimate is not trusted: an exact count (within the cap) is cheap."""
    AccessLogFactory.create_batch(4)
    _analyze()
    assert SmallPaginator(BuildAccessLog.objects.all(), 2).count == 4


def test_html_table_escapes_every_cell_but_the_safe_ones():
    """html_table writes a header row and a row per item; text is escaped, format_html cells are kept as built."""
    table = html_table(["name", "<b>"], [("<script>", format_html("<code>{}</code>", "a&b")), (1, None)])
    assert table == (
        "<table><thead><tr><th>name</th><th>&lt;b&gt;</th></tr></thead><tbody>"
        "<tr><td>&lt;script&gt;</td><td><code>a&amp;b</code></td></tr><tr><td>1</td><td>None</td></tr>"
        "</tbody></table>"
    )
