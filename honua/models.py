from django.db import models


class SchemaMigration(models.Model):
    """One applied migration in the ledger (the seed's ``schema_migrations``), with its files' checksum.

    ``version`` numbers the migrations in the order this database applied them, so the seed's verification
    query ``SELECT version, name, applied_at FROM schema_migrations ORDER BY version`` runs as written.
    ``duration_ms`` is null for migrations applied before the ledger existed (backfilled from
    ``django_migrations``) and for those applied by ``scripts/apply-migrations.sh``.
    """

    version = models.PositiveIntegerField(
        help_text="Order in which this database applied the migration (1, 2, ...): the seed's `version`"
    )
    app = models.CharField(max_length=255)
    name = models.CharField(max_length=255)
    checksum = models.CharField(max_length=64, help_text="SHA-256 of the migration file and the SQL files it runs")
    files = models.JSONField(default=dict, help_text="Each file's path (relative to the project) and its SHA-256")
    applied_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "schema_migrations"
        ordering = ["version"]
        constraints = [
            models.UniqueConstraint(fields=["app", "name"], name="schema_migrations_app_name_uniq"),
            models.UniqueConstraint(fields=["version"], name="schema_migrations_version_uniq"),
            models.CheckConstraint(
                condition=models.Q(checksum__regex=r"^[0-9a-f]{64}$"), name="schema_migrations_checksum_hex"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.app}.{self.name}"


class MaintenanceRun(models.Model):
    """One maintenance task's run by ``run_maintenance``: when, how long, how many rows, and its outcome.

    The tasks of one invocation share ``run_id``. Dry runs are not recorded (they change nothing).
    """

    class Outcome(models.TextChoices):
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    id = models.BigAutoField(primary_key=True)
    run_id = models.UUIDField(help_text="Shared by the tasks of one run_maintenance invocation.")
    schedule = models.CharField(max_length=16, help_text="The schedule the task belongs to.")
    task = models.CharField(max_length=100)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    rows = models.BigIntegerField(default=0, help_text="Rows the task changed (or reported).")
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    detail = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")

    class Meta:
        db_table = "maintenance_runs"
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["task", "-started_at"], name="maintenance_runs_task_idx"),
            models.Index(
                fields=["task", "-started_at"],
                name="maintenance_runs_ok_idx",
                condition=models.Q(outcome="succeeded"),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(outcome__in=["succeeded", "failed"]), name="maintenance_runs_outcome_valid"
            ),
            models.CheckConstraint(condition=models.Q(rows__gte=0), name="maintenance_runs_rows_nonneg"),
            models.CheckConstraint(
                condition=models.Q(schedule__in=["hourly", "every-6-hours", "daily", "weekly", "monthly"]),
                name="maintenance_runs_schedule_valid",
            ),
            models.CheckConstraint(
                condition=~models.Q(outcome="failed") | ~models.Q(error=""), name="maintenance_runs_failed_has_error"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task} {self.outcome} at {self.started_at:%Y-%m-%d %H:%M}"
