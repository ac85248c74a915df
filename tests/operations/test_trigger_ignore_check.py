"""django-pgtrigger's ignore check as the project defines it (operations/sql/0006_trigger_ignore_check.sql): the
library's answers, without a subtransaction when nothing is ignored."""

import re

import pytest

from builds.models import BuildCacheAccessRollup
from tests.conftest import PROJECT_ROOT, sql_rows
from tests.licensing.factories import CustomerFactory

pytestmark = pytest.mark.django_db

SQL_FILE = PROJECT_ROOT / "operations" / "sql" / "0006_trigger_ignore_check.sql"


def _should_ignore(name: str) -> bool:
    return sql_rows("SELECT _pgtrigger_should_ignore(%s)", [name])[0][0]


def test_the_migrated_database_holds_the_projects_check():
    """Every django-pgtrigger trigger installation writes the library's version again (an EXCEPTION block entered
    on every call: a subtransaction per row written). A migration that installs one must be followed by one that
    runs operations/sql/0006_trigger_ignore_check.sql's statement again."""
    body = re.search(r"AS \$\$\n(.*)\$\$;", SQL_FILE.read_text(), re.S).group(1)
    installed = sql_rows("SELECT prosrc FROM pg_proc WHERE oid = 'public._pgtrigger_should_ignore(name)'::regprocedure")
    assert installed[0][0].strip() == body.strip(), (
        "_pgtrigger_should_ignore is not the project's: a later migration installed a django-pgtrigger trigger and "
        "with it the library's version; re-run operations/sql/0006_trigger_ignore_check.sql in a migration after it"
    )


@pytest.mark.parametrize(
    ("setting", "ignored"),
    [
        (None, set()),  # never set in this session
        ("", set()),  # reset (pgtrigger.ignore on its way out)
        ("{}", set()),  # reset by the partition moves
        ("{pgtrigger_a,pgtrigger_b}", {"pgtrigger_a", "pgtrigger_b"}),
        ('{"pgtrigger_a"}', {"pgtrigger_a"}),
        ("not an array", set()),  # a malformed value ignores nothing, and fails nothing
    ],
)
def test_the_check_gives_the_librarys_answers(setting, ignored):
    if setting is not None:
        sql_rows("SELECT set_config('pgtrigger.ignore', %s, true)", [setting])
    else:
        assert sql_rows("SELECT current_setting('pgtrigger.ignore', true)")[0][0] in (None, "")
    for name in ("pgtrigger_a", "pgtrigger_b", "pgtrigger_c"):
        assert _should_ignore(name) is (name in ignored), (setting, name)


def test_a_trigger_fires_unless_pgtrigger_ignore_names_it():
    """End to end, through a django-pgtrigger trigger (the cache access rollup on build_access_log): it counts a
    lookup, and counts nothing while pgtrigger.ignore names it."""
    import pgtrigger

    customer = CustomerFactory()

    def lookup() -> None:
        sql_rows("SELECT count(*) FROM record_cache_access(%s, %s)", ["0" * 64, customer.pk])

    def misses() -> int:
        return sum(BuildCacheAccessRollup.objects.filter(customer_id=customer.pk).values_list("misses", flat=True))

    lookup()
    assert misses() == 1
    with pgtrigger.ignore("builds.BuildAccessLog:rollup_cache_access"):
        lookup()
    assert misses() == 1
    lookup()
    assert misses() == 2
    assert sql_rows("SELECT count(*) FROM build_access_log WHERE customer_id = %s", [customer.pk])[0][0] == 3
