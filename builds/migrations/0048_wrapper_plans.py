from django.db import migrations

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    """The SQL API's thin wrappers over the queue's functions in PL/pgSQL (builds/sql/0048_wrapper_plans.sql).

    get_next_build_for_worker, claim_builds, enqueue_build and enqueue_build_v2 were LANGUAGE sql functions that
    PostgreSQL cannot inline (a volatile set-returning function, or a body with a FROM clause), so every call parsed
    and planned its body again. In PL/pgSQL the plan is cached per connection. Same contracts.
    """

    dependencies = [
        ("builds", "0047_cache_entry_ids"),
    ]

    operations = [
        RunSQLFile("builds", "0048_wrapper_plans"),
    ]
