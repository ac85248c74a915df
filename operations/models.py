"""Operations spans every app (it sits above intake and may import them all): cross-app maintenance, the
access-log archive, and the six-month seed generator.
"""

from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models.functions import Now


class AccessLogArchive(models.Model):
    """A ``build_access_log`` row moved out of the live table by the monthly archiving (same id and columns).

    In table mode it stays here; in file mode it waits here until its month is written to a compressed file. The
    table is partitioned by month on ``accessed_at`` (operations 0004): a month of the live log arrives whole, by
    detach and attach, and the database's primary key is ``(id, accessed_at)``; ids stay unique (the log's).
    """

    id = models.BigIntegerField(primary_key=True)
    manifest_hash = models.CharField(max_length=64)
    customer_id = models.UUIDField()
    cache_entry_id = models.UUIDField(null=True, blank=True)
    hit = models.BooleanField()
    latency_us = models.IntegerField(null=True, blank=True)
    accessed_at = models.DateTimeField()
    archived_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        db_table = "build_access_log_archive"
        ordering = ["-accessed_at"]
        verbose_name = "archived cache access"
        verbose_name_plural = "archived cache accesses"
        indexes = [BrinIndex(fields=["accessed_at"], name="build_access_archive_brin")]

    def __str__(self) -> str:
        return f"{'hit' if self.hit else 'miss'} {self.manifest_hash[:12]} at {self.accessed_at:%Y-%m-%d %H:%M}"
