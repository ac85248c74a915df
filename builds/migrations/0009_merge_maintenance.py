from django.db import migrations


class Migration(migrations.Migration):
    """Joins the maintenance branch's 0005 (written from 0004_queue) with the queue and cache migrations."""

    dependencies = [("builds", "0005_maintenance"), ("builds", "0008_queue_merge_cache")]

    operations = []
