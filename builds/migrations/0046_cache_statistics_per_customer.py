from django.db import migrations, models

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    """cache_statistics read for one customer reads that customer's rows only
    (builds/sql/0046_cache_statistics_per_customer.sql).

    The per-customer figures were a CTE that the overall row read too, so a filter on customer_id could not reach
    the aggregates: one customer's row cost as much as the whole view (21.2 ms against 24.4 ms at ten times the
    seed). The customer rows are now one aggregate per customer with no CTE or FULL JOIN, so the filter reaches every
    scan, and two indexes let each scan probe one customer: its months (build_cache_access_monthly's key leads with
    the month) and its shards not folded yet. The overall row is computed on its own. The rollup's index is built on
    every partition under a SHARE lock: lookups wait for it.
    """

    dependencies = [
        ("builds", "0045_claim_index"),
    ]

    operations = [
        # The indexes take SHARE locks: wait for busy writers at most this long, then fail.
        migrations.RunSQL("SET LOCAL lock_timeout = '5s'", reverse_sql="SET LOCAL lock_timeout = '5s'"),
        migrations.AddIndex(
            model_name="buildcacheaccessmonthly",
            index=models.Index(fields=["customer_id"], name="build_cache_month_customer_idx"),
        ),
        migrations.AddIndex(
            model_name="buildcacheaccessrollup",
            index=models.Index(
                condition=models.Q(("shard__gte", 0)), fields=["customer_id"], name="build_cache_delta_customer_idx"
            ),
        ),
        RunSQLFile("builds", "0046_cache_statistics_per_customer"),
    ]
