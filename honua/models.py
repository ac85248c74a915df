from django.db import models


class SchemaMigration(models.Model):
    """One applied migration in the ledger (the seed's ``schema_migrations``), with its files' checksum.

    ``duration_ms`` is null for migrations applied before the ledger existed (backfilled from
    ``django_migrations``).
    """

    app = models.CharField(max_length=255)
    name = models.CharField(max_length=255)
    checksum = models.CharField(max_length=64, help_text="SHA-256 of the migration file and the SQL files it runs")
    files = models.JSONField(default=dict, help_text="Each file's path (relative to the project) and its SHA-256")
    applied_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "schema_migrations"
        ordering = ["applied_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["app", "name"], name="schema_migrations_app_name_uniq"),
            models.CheckConstraint(
                condition=models.Q(checksum__regex=r"^[0-9a-f]{64}$"), name="schema_migrations_checksum_hex"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.app}.{self.name}"
