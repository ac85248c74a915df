"""Joins the queue/cache branch (0008) and the maintenance branch (0005) of builds' migrations; they touch
different functions, so their order does not matter. (Made in the console branch, which merges both.)"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("builds", "0005_maintenance"),
        ("builds", "0008_queue_merge_cache"),
    ]

    operations = []
