"""The current-schema tree (<app>/sql/current/): one file per function, view and table's triggers, kept current."""

import re

import pytest
from django.db import connection

from honua.schema_tree import compare_tree, render_tree, tree_on_disk, write_tree
from tests.conftest import PROJECT_ROOT


@pytest.fixture
def rendered(db) -> dict[str, str]:
    with connection.cursor() as cursor:
        return render_tree(cursor)


def test_committed_tree_matches_a_freshly_migrated_database(rendered):
    """Every file of the committed tree is what the migrations produce, none is missing and none is stale;
    otherwise run `python manage.py schema_tree`."""
    assert compare_tree(rendered, tree_on_disk(PROJECT_ROOT)) == []


def test_every_function_view_and_trigger_has_its_file(rendered):
    """Each of the project's functions and views (overloads together) and each table's triggers is in the tree."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'public' AND p.prorettype <> 'trigger'::regtype AND p.proname NOT LIKE '\\_pg%%'"
        )
        functions = {row[0] for row in cursor.fetchall()}
        cursor.execute("SELECT viewname FROM pg_views WHERE schemaname = 'public'")
        views = {row[0] for row in cursor.fetchall()}
        # A partition's clones of its partitioned table's triggers are the parent's (tgparentid).
        cursor.execute(
            "SELECT DISTINCT tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal AND tgparentid = 0"
        )
        tables = {row[0] for row in cursor.fetchall()}
    names = {path.rsplit("/", 1)[1].removesuffix(".sql") for path in rendered if "/triggers/" not in path}
    assert functions | views <= names
    assert {path.rsplit("/", 1)[1].removesuffix(".sql") for path in rendered if "/triggers/" in path} == tables
    assert rendered["builds/sql/current/enqueue_build.sql"].count("CREATE OR REPLACE FUNCTION") >= 2  # overloads


def test_file_names_the_migration_that_defined_it_last(rendered):
    """The header points at the last SQL file that (re)defined the object, not the first."""

    def defined_in(path: str) -> int:  # later migrations may redefine it again: only "not before" is pinned
        match = re.search(r"Last defined in builds/sql/(\d{4})_\w+\.sql\.", rendered[path])
        assert match, rendered[path][:300]
        return int(match.group(1))

    assert defined_in("builds/sql/current/cache_statistics.sql") >= 13  # 0007, then 0013_cache_rollup
    assert defined_in("builds/sql/current/get_license_quota_usage.sql") >= 12  # 0012: ALTER FUNCTION ... ROWS 1
    assert "ROWS 1" in rendered["builds/sql/current/get_license_quota_usage.sql"]


def test_library_helpers_are_left_out(rendered):
    """django-pghistory's own helper is not part of the tree; django-pgtrigger's ignore check, which the project
    replaces, is, with the migration that replaced it."""
    assert not any("_pgh_attach_context" in path for path in rendered)
    check = rendered["operations/sql/current/_pgtrigger_should_ignore.sql"]
    assert "Last defined in operations/sql/0006_trigger_ignore_check.sql." in check
    assert "current_setting('pgtrigger.ignore', true)" in check


def test_compare_names_changed_missing_and_stale_files():
    """A hand-edited, a missing and a stale file are each named."""
    expected = {"a/sql/current/f.sql": "one\n", "a/sql/current/g.sql": "two\n"}
    on_disk = {"a/sql/current/f.sql": "edited\n", "a/sql/current/old.sql": "gone\n"}
    assert compare_tree(expected, on_disk) == [
        "a/sql/current/f.sql: differs from the database's definition",
        "a/sql/current/g.sql: missing (the database has this object)",
        "a/sql/current/old.sql: stale (the database has no such object any more)",
    ]


def test_writing_changes_only_what_differs_and_deletes_stale_files(tmp_path):
    """Writing the tree rewrites changed files, adds new ones, deletes stale ones and leaves the rest alone."""
    folder = tmp_path / "app" / "sql" / "current"
    folder.mkdir(parents=True)
    (folder / "same.sql").write_text("same\n")
    (folder / "edited.sql").write_text("by hand\n")
    (folder / "dropped.sql").write_text("gone\n")
    current = {f"app/sql/current/{path.name}": path.read_text() for path in folder.glob("*.sql")}
    expected = {
        "app/sql/current/same.sql": "same\n",
        "app/sql/current/edited.sql": "from the database\n",
        "app/sql/current/triggers/t.sql": "new\n",
    }
    written, deleted = write_tree(tmp_path, expected, current)
    assert sorted(written) == ["app/sql/current/edited.sql", "app/sql/current/triggers/t.sql"]
    assert deleted == ["app/sql/current/dropped.sql"]
    assert {p.relative_to(tmp_path).as_posix(): p.read_text() for p in tmp_path.rglob("*.sql")} == expected
