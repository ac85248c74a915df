from django.db import migrations


class Migration(migrations.Migration):
    """Joins the queue's and the cache's migrations, written in parallel from 0003_cache."""

    dependencies = [("builds", "0004_queue"), ("builds", "0007_cache_stats")]

    operations = []
