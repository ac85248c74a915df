from django.db import migrations

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    """A completion registers its image in the cache from the row it just wrote (builds/sql/0049_completion_registration.sql).

    build_complete called register_build_in_cache(build_id), which read the row again, looked the license and the
    customer up apart, scanned the image artifacts twice and went through register_cache_entry's checks of what the
    build's constraints already hold. It now calls build_cache_register(row); register_cache_entry and
    register_build_in_cache keep their contracts and share the insert (cache_entry_store) and the content hash
    (cache_image_artifacts, cache_content_digest).
    """

    dependencies = [
        ("builds", "0048_wrapper_plans"),
    ]

    operations = [
        RunSQLFile("builds", "0049_completion_registration"),
    ]
