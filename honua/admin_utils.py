"""Admin helpers every app may use: cheap counts for changelists over big tables, read-only admins, and the
HTML table of a read-only field.

Django's changelist counts the whole queryset to paginate (and, by default, the whole table again for "N total").
On ``build_access_log`` or ``build_events`` at six months' volume that is a sequential scan of millions of rows
on every page view. ``EstimatedCountPaginator`` answers from the planner's statistics when the list is
unfiltered and counts at most ``cap`` rows when it is filtered; ``BigTableAdminMixin`` wires it into a
ModelAdmin.
"""

from collections.abc import Iterable, Sequence

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

ESTIMATE_SQL = """
SELECT sum(greatest(c.reltuples, 0))::bigint, bool_or(c.reltuples >= 0)
FROM pg_class c
WHERE (c.oid = %(table)s::regclass
       OR c.oid IN (SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = %(table)s::regclass))
  AND c.relkind <> 'p'  -- a partitioned table's own reltuples already counts its partitions' rows
"""


def estimated_row_count(model, *, using: str = "default") -> int | None:
    """The planner's estimate of ``model``'s rows (its partitions included), or None if never analysed."""
    with connections[using].cursor() as cursor:
        cursor.execute(ESTIMATE_SQL, {"table": connections[using].ops.quote_name(model._meta.db_table)})
        estimate, analysed = cursor.fetchone()
    return int(estimate) if analysed else None


def capped_count(queryset: QuerySet, cap: int) -> int:
    """``min(queryset.count(), cap)``, reading at most ``cap`` rows (``COUNT(*)`` over a ``LIMIT`` subquery)."""
    return queryset.order_by()[:cap].count()


class EstimatedCountPaginator(Paginator):
    """A paginator whose count never scans a big table.

    - Unfiltered, on a table the statistics say has at least ``exact_below`` rows: the estimate from
      ``pg_class.reltuples`` (one catalog lookup; accurate to a few percent after autovacuum's ANALYZE).
    - Otherwise (filtered, small, or never analysed): an exact count up to ``cap`` rows. Past the cap, the
      changelist shows ``cap`` results, ``cap / per_page`` pages; a narrower filter finds the rest.
    """

    exact_below = 10_000
    cap = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return super().count
        if not queryset.query.where and not queryset.query.distinct:
            estimate = estimated_row_count(queryset.model, using=queryset.db)
            if estimate is not None and estimate >= self.exact_below:
                return estimate
        return capped_count(queryset, self.cap)


class BigTableAdminMixin:
    """For a ModelAdmin over a big table: estimated or capped counts, and no second "N total" count.

    Keep ``date_hierarchy`` off such admins too: its drill-down reads the distinct dates of the whole table.
    """

    paginator = EstimatedCountPaginator
    show_full_result_count = False


class ReadOnlyAdminMixin:
    """A ModelAdmin for looking only: no add, change or delete (logs, history, SQL views, run records)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def audit_admin_action(request, obj, message: str, *, action_flag: int | None = None) -> None:
    """Record one admin action on one object in Django's admin log: who (``request.user``), what and which object
    (content type, primary key, ``str(obj)``), and the change in words (``message``, e.g. "Suspend: active →
    suspended."). Every data-changing admin action calls this once per object it changed, so the "Log entries"
    page is the one audit trail of the admin. Never put a secret in ``message``: the log is shown to operators.
    """
    from django.contrib.admin.models import CHANGE, LogEntry

    LogEntry.objects.log_actions(
        user_id=request.user.pk,
        queryset=[obj],
        action_flag=CHANGE if action_flag is None else action_flag,
        change_message=message,
        single_object=True,
    )


def html_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> SafeString:
    """A table for a read-only field of a change page: one header row, then a row of cells per item of ``rows``.
    Headers and cells are escaped, except those already marked safe (built with ``format_html``)."""

    def cells(row: Sequence[object]) -> SafeString:
        return format_html_join("", "<td>{}</td>", ((cell,) for cell in row))

    return format_html(
        "<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>",
        format_html_join("", "<th>{}</th>", ((header,) for header in headers)),
        format_html_join("", "<tr>{}</tr>", ((cells(row),) for row in rows)),
    )
