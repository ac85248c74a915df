"""The build queue and its history (``build_queue``, ``build_results``, ``build_artifacts``, ``build_events``,
``build_metrics``) and the build cache (``build_cache_registry``, ``build_access_log``).

Invariants are enforced by the database. ``build_events``, ``build_metrics`` and ``build_access_log`` are
append-only, high-volume and have no inbound foreign keys, so they can become monthly partitions.
"""

import pgtrigger
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex, GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import models
from django.db.models import F, Func, Q, Value
from django.db.models.functions import Cast, Now

from honua.fields import uuid_primary_key
from honua.triggers import update_updated_at_column
from licensing.models import Customer, License

HEX64 = r"^[0-9a-f]{64}$"
BUILD_STATUSES = ["queued", "running", "succeeded", "failed", "cancelled", "timed_out"]
TERMINAL_STATUSES = ["succeeded", "failed", "cancelled", "timed_out"]
# What a license's features can entitle a build to (builds/sql/0020_entitlements.sql): the feature that entitles
# to an output, and the artifact kind that output is.
ENTITLED_OUTPUTS = ["sbom", "signing"]
ARTIFACT_KIND_OF_OUTPUT = {"sbom": "sbom", "signing": "signature"}

BUILD_NUMBER_SEQUENCE = "build_queue_build_number_seq"
CACHE_COUNTER_SHARDS = 64  # hit-counter shards per cache entry (BuildCacheHitCounter)


class FunctionTrigger(pgtrigger.Trigger):
    """A trigger that executes a trigger function of the app's SQL files (``execute``) directly, not through the
    function django-pgtrigger generates around ``func`` (created but unused): that wrapper first calls
    ``_pgtrigger_should_ignore``, whose EXCEPTION block is a subtransaction on every row. For hot paths."""

    execute: str = ""

    def __init__(self, *, execute: str, **kwargs):
        self.execute = execute
        kwargs.setdefault("func", f"RAISE EXCEPTION 'unused: the trigger executes {execute}()';")
        super().__init__(**kwargs)

    def render_execute(self, model) -> str:
        return f"{self.execute}()"


class AllOf(pgtrigger.Condition):
    """A trigger condition that holds when each of ``conditions`` holds (django-pgtrigger's do not combine)."""

    def __init__(self, *conditions: pgtrigger.Condition):
        self.conditions = conditions
        super().__init__(sql="unused")

    def resolve(self, model) -> str:
        return "(" + " AND ".join(f"({condition.resolve(model)})" for condition in self.conditions) + ")"


# The start of the current UTC day, as the daily rollups' mark functions compare it (builds.0038_rollup_marks): a
# row whose days are all today (every claim, every completion) cannot make a folded day dirty, so the mark triggers
# do not fire for it at all.
TODAY_STARTS = "(date_trunc('day', clock_timestamp() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"


def _folded_day(row: str) -> str:
    """SQL: ``row`` (OLD or NEW) of build_queue counts on a day before today in build_daily_rollup (its finish day,
    or its creation day if a cache hit), as build_daily_rollup_mark reads it."""
    return f"{row}.finished_at < {TODAY_STARTS} OR ({row}.cache_hit AND {row}.created_at < {TODAY_STARTS})"


# Running builds, stated as the running index's predicate (build_queue_running_idx): started_at is never NULL for a
# running build, and saying so lets a scan of running builds use that index.
RUNNING_BUILDS = Q(status="running", started_at__isnull=False)


class Build(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"
        TIMED_OUT = "timed_out", "Timed out"

    # Time-ordered (build_uuid_v7, builds/sql/0010_queue_perf.sql): key inserts append instead of landing randomly.
    id = uuid_primary_key("build_uuid_v7")
    # The number people use (#12345): from a sequence, so enqueue pays one nextval (builds/sql/0025_build_number.sql).
    build_number = models.BigIntegerField(
        unique=True, editable=False, db_default=Func(Value(BUILD_NUMBER_SEQUENCE), function="nextval")
    )
    # No single-column indexes on the foreign keys: build_queue_customer_idx and build_queue_license_month_idx lead
    # with them, and every non-HOT update (each claim and completion) writes each full index of this table.
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="builds", db_index=False)
    license = models.ForeignKey(License, on_delete=models.PROTECT, related_name="builds", db_index=False)
    manifest = models.JSONField()
    manifest_hash = models.CharField(max_length=64)
    priority = models.SmallIntegerField(default=5, help_text="1..10; 10 is the most urgent.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    cache_hit = models.BooleanField(default=False)
    cache_entry = models.ForeignKey(
        "BuildCacheEntry",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="served_builds",
        db_index=False,  # build_queue_cache_entry_idx: only cache hits have one
    )
    worker_id = models.CharField(max_length=200, null=True, blank=True)
    progress = models.SmallIntegerField(default=0)
    stage = models.CharField(max_length=200, null=True, blank=True)
    retry_count = models.SmallIntegerField(default=0)
    max_retries = models.SmallIntegerField(default=3)
    timeout_seconds = models.IntegerField(default=3600, help_text="Longest a build may run in all.")
    heartbeat_timeout_seconds = models.IntegerField(
        default=120, help_text="A running build whose last heartbeat is older than this is rescued."
    )
    cancel_requested = models.BooleanField(default=False)
    image_reference = models.CharField(max_length=500, null=True, blank=True)
    image_digest = models.CharField(max_length=100, null=True, blank=True)
    error_message = models.TextField(null=True, blank=True)
    source = models.CharField(max_length=32, default="api", help_text="Who enqueued it: api, intake, admin...")
    # Set at insert by the trigger build_queue_entitled_outputs from the license's features, whatever the insert
    # says, and never changed after: a later change of the license does not change what a build produces.
    entitled_outputs = ArrayField(
        models.TextField(),
        db_default=Cast(models.Value("{}"), ArrayField(models.TextField())),
        editable=False,
        help_text="Outputs the build is entitled to, fixed at enqueue: sbom, signing.",
    )
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    not_before = models.DateTimeField(db_default=Now(), help_text="Not claimable before this (retry backoff).")
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        db_table = "build_queue"
        triggers = [
            # update_updated_at_column's body, executed directly (builds/sql/0027_scheduler_speed.sql): it runs on
            # every claim and completion.
            FunctionTrigger(
                name="update_updated_at_column",
                when=pgtrigger.Before,
                operation=pgtrigger.Update,
                execute="build_queue_set_updated_at",
            ),
            # Credential references in the manifest must be the customer's (builds/sql/0015_manifest_credentials.sql).
            pgtrigger.Trigger(
                name="manifest_credentials_owned",
                when=pgtrigger.Before,
                operation=pgtrigger.Insert,
                condition=pgtrigger.Condition("NOT manifest_is_shareable(NEW.manifest)"),
                func="PERFORM manifest_check_credentials(NEW.customer_id, NEW.manifest); RETURN NEW;",
            ),
            # The scheduler's counters (BuildLicenseState, BuildMemberState, BuildQuotaUsage) follow every change
            # that moves a build in or out of queued/running or of the monthly count (builds/sql/0016_scheduler.sql).
            # Inserts are counted per statement (a bulk INSERT ... SELECT updates each counter row once).
            pgtrigger.Trigger(
                name="build_queue_account_insert",
                when=pgtrigger.After,
                operation=pgtrigger.Insert,
                level=pgtrigger.Statement,
                referencing=pgtrigger.Referencing(new="new_builds"),
                func="""
                    INSERT INTO build_quota_usage AS u (license_id, period_start, used)
                    SELECT n.license_id, build_quota_month(n.created_at), count(*)
                      FROM new_builds n
                     WHERE NOT n.cache_hit AND NOT (n.status = 'cancelled' AND n.started_at IS NULL)
                     GROUP BY 1, 2
                     ORDER BY 1, 2
                    ON CONFLICT (license_id, period_start) DO UPDATE SET used = u.used + EXCLUDED.used;
                    PERFORM build_state_apply(a.license_id, a.queued, a.urgent, a.running, false)
                       FROM (SELECT n.license_id,
                                    count(*) FILTER (WHERE n.status = 'queued')::integer AS queued,
                                    count(*) FILTER (WHERE n.status = 'queued' AND n.priority >= 9)::integer AS urgent,
                                    count(*) FILTER (WHERE n.status = 'running')::integer AS running
                               FROM new_builds n
                              WHERE n.status IN ('queued', 'running')
                              GROUP BY n.license_id
                              ORDER BY n.license_id) a;
                    PERFORM build_member_apply(a.license_id, a.customer_id, a.queued, a.urgent, false)
                       FROM (SELECT n.license_id, n.customer_id, count(*)::integer AS queued,
                                    count(*) FILTER (WHERE n.priority >= 9)::integer AS urgent
                               FROM new_builds n
                              WHERE n.status = 'queued'
                              GROUP BY n.license_id, n.customer_id
                              ORDER BY n.license_id, n.customer_id) a;
                    RETURN NULL;
                """,
            ),
            # Claims and completions are counted inline, the rest through build_queue_account(OLD, NEW)
            # (build_queue_account_row, builds/sql/0027_scheduler_speed.sql).
            FunctionTrigger(
                name="build_queue_account_update",
                when=pgtrigger.After,
                operation=pgtrigger.Update,
                condition=pgtrigger.AnyChange(
                    "status", "priority", "license", "customer", "created_at", "cache_hit", "started_at"
                ),
                execute="build_queue_account_row",
            ),
            pgtrigger.Trigger(
                name="build_queue_account_delete",
                when=pgtrigger.After,
                operation=pgtrigger.Delete,
                func="PERFORM build_queue_account(OLD, NULL); RETURN NULL;",
            ),
            # Every insert (enqueue_build's included) takes its outputs from its license's features.
            FunctionTrigger(
                name="build_queue_entitled_outputs",
                when=pgtrigger.Before,
                operation=pgtrigger.Insert,
                execute="build_queue_set_entitled_outputs",
            ),
            # A change to a finished build of a day already folded into build_daily_rollup marks that day for
            # re-folding; build_performance_summary reads such a day live until then (builds/sql/0032_daily_rollup.sql).
            FunctionTrigger(
                name="build_daily_rollup_mark_insert",
                when=pgtrigger.After,
                operation=pgtrigger.Insert,
                condition=pgtrigger.Condition(_folded_day("NEW")),
                execute="build_daily_rollup_mark",
            ),
            # No WHEN clause: PostgreSQL prepares a trigger's WHEN expression again for every statement, and this
            # test (the claim's and the completion's updates pass it) costs less as the function's first lines
            # (builds/sql/0050_daily_mark_gate.sql).
            FunctionTrigger(
                name="build_daily_rollup_mark_update",
                when=pgtrigger.After,
                operation=pgtrigger.Update,
                execute="build_daily_rollup_mark",
            ),
            FunctionTrigger(
                name="build_daily_rollup_mark_delete",
                when=pgtrigger.After,
                operation=pgtrigger.Delete,
                condition=pgtrigger.Condition(_folded_day("OLD")),
                execute="build_daily_rollup_mark",
            ),
            # Emptying the queue empties its rollup.
            FunctionTrigger(
                name="build_daily_rollup_truncate",
                when=pgtrigger.After,
                operation=pgtrigger.Truncate,
                level=pgtrigger.Statement,
                execute="build_daily_rollup_reset",
            ),
        ]
        permissions = [
            ("cancel_build", "Can cancel builds"),
            ("retry_build", "Can retry builds"),
            ("reprioritize_build", "Can change the priority of builds"),
        ]
        ordering = ["-created_at"]
        indexes = [
            # The claim path: one tenant's queued builds in its own claim order (most urgent first, FIFO within a
            # priority); the fair-share claim picks the license and customer first (build_license_state).
            models.Index(
                "license",
                "customer",
                F("priority").desc(),
                "created_at",
                "id",
                name="build_queue_tenant_claim_idx",
                condition=Q(status="queued"),
            ),
            # Running builds (rescue, the operator's worker list). Its predicate also says started_at IS NOT NULL
            # (always true of a running build: build_queue_running_has_worker), which the by-id statements of the
            # hot path (complete, heartbeat, release: "id = $1 AND status = 'running'") do not imply: else the
            # planner, believing running builds few, scans this whole index instead of the primary key, dead
            # entries included (builds.0030_running_index).
            models.Index(
                fields=["license"],
                name="build_queue_running_idx",
                condition=Q(status="running", started_at__isnull=False),
            ),
            # Duplicate-manifest lookup among live builds.
            models.Index(
                fields=["customer", "manifest_hash"],
                name="build_queue_live_hash_idx",
                condition=Q(status__in=["queued", "running"]),
            ),
            models.Index(fields=["customer", "-created_at"], name="build_queue_customer_idx"),
            models.Index(fields=["license", "created_at"], name="build_queue_license_month_idx"),
            # A license's cache hits by month (customer_build_usage): cache-hit builds only, so the claim's and
            # the completion's updates never write it (builds.0036_usage_view).
            models.Index(
                fields=["license", "created_at"], name="build_queue_cache_hit_idx", condition=Q(cache_hit=True)
            ),
            # Finished builds by status, newest first (admin, history); queued and running builds are reached
            # through the partial indexes above, so claims do not write this index.
            models.Index(
                fields=["status", "-created_at"],
                name="build_queue_finished_idx",
                condition=Q(status__in=TERMINAL_STATUSES),
            ),
            GinIndex(fields=["manifest"], name="build_queue_manifest_gin", opclasses=["jsonb_path_ops"]),
            models.Index(
                fields=["cache_entry"], name="build_queue_cache_entry_idx", condition=Q(cache_entry__isnull=False)
            ),
            # Full-text search of errors (builds.queue.selectors.builds_search): failed builds only.
            GinIndex(
                SearchVector("error_message", config="simple"),
                name="build_queue_error_fts",
                condition=Q(error_message__isnull=False),
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(priority__gte=1, priority__lte=10), name="build_queue_priority_range"),
            models.CheckConstraint(condition=Q(progress__gte=0, progress__lte=100), name="build_queue_progress_range"),
            models.CheckConstraint(condition=Q(status__in=BUILD_STATUSES), name="build_queue_status_valid"),
            models.CheckConstraint(
                condition=Q(retry_count__gte=0, max_retries__gte=0, retry_count__lte=F("max_retries")),
                name="build_queue_retries_valid",
            ),
            models.CheckConstraint(
                condition=Q(timeout_seconds__gt=0, heartbeat_timeout_seconds__gt=0), name="build_queue_timeouts_pos"
            ),
            models.CheckConstraint(condition=Q(manifest_hash__regex=HEX64), name="build_queue_hash_hex"),
            models.CheckConstraint(
                condition=~Q(status="running") | Q(worker_id__isnull=False, started_at__isnull=False),
                name="build_queue_running_has_worker",
            ),
            models.CheckConstraint(
                condition=Q(cache_hit=False) | Q(status="succeeded"), name="build_queue_cache_hit_succeeded"
            ),
            models.CheckConstraint(
                condition=Q(entitled_outputs__contained_by=ENTITLED_OUTPUTS), name="build_queue_entitled_outputs_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"build {self.label} ({self.status})"

    @property
    def label(self) -> str:
        """How people name a build: ``#12345`` (its build number), or the id before it has one."""
        return f"#{self.build_number}" if self.build_number is not None else str(self.pk)


class BuildLicenseState(models.Model):
    """The scheduler's per-license counters (builds/sql/0016_scheduler.sql), kept exact by the
    ``build_queue_account_*`` triggers in the same transaction as each build's change.

    ``running``/``queued``/``urgent_queued`` count the license's builds (the whole family's, for a parent's
    license); ``vtime`` is its virtual time: each claim adds ``1 / scheduling_weight`` and the claim picks the
    eligible license with the lowest (urgent work first). Locking this row (``FOR UPDATE``) is the per-license
    lock that keeps ``running <= max_concurrent_builds``.

    The claim reads the licenses in its order from ``build_license_state_claim_idx``, which holds only the claimable
    ones (``claimable``), so a pick reads a few index and heap pages however many licenses and dead row versions
    the table holds (builds.0045_claim_index). The index is on the generated columns, not on the counters: an
    update is HOT unless it changes ``vtime`` (a claim) or flips ``claimable``/``urgent``, so completions and
    enqueues below a license's cap still leave the indexes alone.
    """

    license = models.OneToOneField(
        License, primary_key=True, on_delete=models.CASCADE, related_name="scheduler_state", db_constraint=False
    )
    running = models.IntegerField(default=0)
    queued = models.IntegerField(default=0)
    urgent_queued = models.IntegerField(default=0)
    vtime = models.FloatField(default=0)
    max_running = models.IntegerField(
        default=1,
        help_text="The license's max_concurrent_builds, copied at every change of this row (the claim "
        "re-checks the license itself once it holds the lock).",
    )
    paused = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Claiming is paused for this license (a copy of its build_claim_pauses row, kept by "
        "pause_claims/resume_claims and set on insert), so the claim's scan skips it without another query.",
    )
    claimable = models.GeneratedField(
        expression=Q(queued__gt=0, paused=False, running__lt=F("max_running")),
        output_field=models.BooleanField(),
        db_persist=True,
        help_text="Queued work, not paused, below the copy of its cap: the rows the claim's index holds.",
    )
    urgent = models.GeneratedField(
        expression=Q(urgent_queued__gt=0),
        output_field=models.BooleanField(),
        db_persist=True,
        help_text="Urgent work queued (priority 9-10): claimed ahead of the fair order.",
    )

    class Meta:
        db_table = "build_license_state"
        indexes = [
            # The claim's order over the claimable licenses (builds.0045_claim_index): a pick is the first entry
            # not locked by another claim, instead of a scan and sort of the whole table.
            models.Index(
                fields=["-urgent", "vtime", "license"],
                name="build_license_state_claim_idx",
                condition=Q(claimable=True),
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(running__gte=0, queued__gte=0, urgent_queued__gte=0), name="build_license_state_counts_pos"
            )
        ]
        triggers = [
            pgtrigger.Trigger(
                name="build_license_state_paused",
                when=pgtrigger.Before,
                operation=pgtrigger.Insert,
                func="NEW.paused := EXISTS (SELECT 1 FROM build_claim_pauses p WHERE p.scope = 'license' "
                "AND p.target_id = NEW.license_id); RETURN NEW;",
            )
        ]


class BuildMemberState(models.Model):
    """Fairness among the customers sharing one license (a parent and its sub-customers): their queued builds
    and virtual time (each claim adds 1). The claim picks the member with urgent work first, then the lowest."""

    pk = models.CompositePrimaryKey("license_id", "customer_id")
    license_id = models.UUIDField()
    customer_id = models.UUIDField()
    queued = models.IntegerField(default=0)
    urgent_queued = models.IntegerField(default=0)
    vtime = models.FloatField(default=0)
    paused = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Claiming is paused for this customer (a copy of its build_claim_pauses row, kept by "
        "pause_claims/resume_claims and set on insert): the claim passes over this member's builds.",
    )

    class Meta:
        db_table = "build_member_state"
        constraints = [
            models.CheckConstraint(
                condition=Q(queued__gte=0, urgent_queued__gte=0), name="build_member_state_counts_pos"
            )
        ]
        triggers = [
            pgtrigger.Trigger(
                name="build_member_state_paused",
                when=pgtrigger.Before,
                operation=pgtrigger.Insert,
                func="NEW.paused := EXISTS (SELECT 1 FROM build_claim_pauses p WHERE p.scope = 'customer' "
                "AND p.target_id = NEW.customer_id); RETURN NEW;",
            )
        ]


class ClaimPause(models.Model):
    """A pause of claiming (issue 16, "pause and drain"): globally, for one customer or for one license. Paused
    work stays queued and is never claimed; running builds finish normally. Written only through
    ``pause_claims``/``resume_claims`` (builds/sql/0029_claim_pauses.sql), which also copy the pause onto the
    scheduler's state rows so the claim's hot path reads no extra table (a global pause costs one index probe)."""

    class Scope(models.TextChoices):
        GLOBAL = "global"
        CUSTOMER = "customer"
        LICENSE = "license"

    id = models.BigAutoField(primary_key=True)
    scope = models.CharField(max_length=16, choices=Scope.choices)
    target_id = models.UUIDField(null=True, blank=True, help_text="The customer's or license's id; empty if global.")
    paused_at = models.DateTimeField(db_default=Now())
    paused_by = models.CharField(max_length=150, blank=True, default="", db_default="")
    reason = models.CharField(max_length=500, blank=True, default="", db_default="")

    class Meta:
        db_table = "build_claim_pauses"
        ordering = ["-paused_at"]
        permissions = [("pause_claims", "Can pause and resume claiming")]
        constraints = [
            models.UniqueConstraint(fields=["scope", "target_id"], nulls_distinct=False, name="build_claim_pauses_one"),
            models.CheckConstraint(
                condition=Q(scope="global", target_id__isnull=True)
                | Q(scope__in=["customer", "license"], target_id__isnull=False),
                name="build_claim_pauses_target",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scope} pause" if self.target_id is None else f"{self.scope} {self.target_id} pause"


class BuildQuotaUsage(models.Model):
    """Builds counted against a license's monthly quota, one row per (license, calendar month UTC), kept by the
    same triggers: enqueue reads and locks one row instead of counting the month's builds."""

    pk = models.CompositePrimaryKey("license_id", "period_start")
    license_id = models.UUIDField()
    period_start = models.DateField()
    used = models.IntegerField(default=0)

    class Meta:
        db_table = "build_quota_usage"
        constraints = [models.CheckConstraint(condition=Q(used__gte=0), name="build_quota_usage_used_pos")]


class BuildResult(models.Model):
    """The outcome of a build reaching a terminal state (a retried build can have several)."""

    id = models.BigAutoField(primary_key=True)
    # No index of its own: build_results_build_idx leads with build_id.
    build = models.ForeignKey(Build, on_delete=models.CASCADE, related_name="results", db_index=False)
    attempt = models.SmallIntegerField(default=1)
    status = models.CharField(max_length=16, choices=Build.Status.choices)
    worker_id = models.CharField(max_length=200, null=True, blank=True)
    image_reference = models.CharField(max_length=500, null=True, blank=True)
    image_digest = models.CharField(max_length=100, null=True, blank=True)
    error_message = models.TextField(null=True, blank=True)
    log = models.TextField(blank=True, default="")
    queue_wait_ms = models.BigIntegerField(null=True, blank=True)
    duration_ms = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        db_table = "build_results"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["build", "-created_at"], name="build_results_build_idx"),
            BrinIndex(fields=["created_at"], name="build_results_created_brin"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=TERMINAL_STATUSES), name="build_results_status_terminal"),
            models.CheckConstraint(
                condition=Q(duration_ms__isnull=True) | Q(duration_ms__gte=0), name="build_results_duration_pos"
            ),
            models.CheckConstraint(
                condition=Q(queue_wait_ms__isnull=True) | Q(queue_wait_ms__gte=0), name="build_results_wait_pos"
            ),
        ]
        # A result added to, changed in or removed from a day already folded into build_activity_daily marks the
        # day for re-folding (builds/sql/0033_dashboard_rollup.sql): an update or a delete by one statement-level call,
        # an insert by a row trigger that only fires for a result dated before today.
        triggers = [
            # A row trigger whose condition is false for a result created today (every completion's): the
            # statement trigger it replaces built a transition table on every completion (builds.0038_rollup_marks).
            FunctionTrigger(
                name="build_results_rollup_mark_insert_row",
                when=pgtrigger.After,
                operation=pgtrigger.Insert,
                condition=pgtrigger.Condition(f"NEW.created_at < {TODAY_STARTS}"),
                execute="build_results_rollup_mark_row",
            ),
            FunctionTrigger(
                name="build_results_rollup_mark_update",
                when=pgtrigger.After,
                operation=pgtrigger.Update,
                level=pgtrigger.Statement,
                referencing=pgtrigger.Referencing(old="old_rows", new="new_rows"),
                execute="build_results_rollup_mark",
            ),
            FunctionTrigger(
                name="build_results_rollup_mark_delete",
                when=pgtrigger.After,
                operation=pgtrigger.Delete,
                level=pgtrigger.Statement,
                referencing=pgtrigger.Referencing(old="old_rows"),
                execute="build_results_rollup_mark",
            ),
            FunctionTrigger(
                name="build_results_rollup_truncate",
                when=pgtrigger.After,
                operation=pgtrigger.Truncate,
                level=pgtrigger.Statement,
                execute="build_daily_rollup_reset",
            ),
        ]


class BuildArtifact(models.Model):
    class Kind(models.TextChoices):
        IMAGE = "image"
        SBOM = "sbom", "SBOM"
        REPORT = "report"
        LOG = "log"
        SIGNATURE = "signature"

    id = models.BigAutoField(primary_key=True)
    build = models.ForeignKey(Build, on_delete=models.CASCADE, related_name="artifacts")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    uri = models.CharField(max_length=1000)
    media_type = models.CharField(max_length=200)
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        db_table = "build_artifacts"
        ordering = ["build", "kind"]
        indexes = [models.Index(fields=["build", "kind"], name="build_artifacts_build_idx")]
        triggers = [
            # SBOM and signature artifacts only for builds entitled to them (build_entitled_to_artifact, HN203).
            pgtrigger.Trigger(
                name="build_artifacts_require_entitlement",
                when=pgtrigger.Before,
                operation=pgtrigger.Insert | pgtrigger.Update,
                condition=pgtrigger.Condition("NEW.kind IN ('sbom', 'signature')"),
                func="PERFORM build_require_artifact_entitlement(NEW.build_id, NEW.kind); RETURN NEW;",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["image", "sbom", "report", "log", "signature"]), name="build_artifacts_kind_valid"
            ),
            models.CheckConstraint(condition=Q(size_bytes__gte=0), name="build_artifacts_size_pos"),
            models.CheckConstraint(condition=Q(sha256__regex=HEX64), name="build_artifacts_sha256_hex"),
            models.CheckConstraint(condition=~Q(uri=""), name="build_artifacts_uri_not_empty"),
        ]


class BuildEvent(models.Model):
    """One transition or notable moment of a build (append-only)."""

    id = models.BigAutoField(primary_key=True)
    build_id = models.UUIDField()
    event_type = models.CharField(max_length=32)
    from_status = models.CharField(max_length=16, null=True, blank=True)
    to_status = models.CharField(max_length=16, null=True, blank=True)
    worker_id = models.CharField(max_length=200, null=True, blank=True)
    message = models.TextField(blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        db_table = "build_events"
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["build_id", "created_at"], name="build_events_build_idx"),
            BrinIndex(fields=["created_at"], name="build_events_created_brin"),
        ]


class BuildMetric(models.Model):
    """A time-series sample about a build (append-only)."""

    id = models.BigAutoField(primary_key=True)
    build_id = models.UUIDField()
    name = models.CharField(max_length=100)
    value = models.FloatField()
    unit = models.CharField(max_length=32, blank=True, default="")
    recorded_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "build_metrics"
        ordering = ["recorded_at", "id"]
        indexes = [
            models.Index(fields=["build_id", "name", "recorded_at"], name="build_metrics_build_idx"),
            BrinIndex(fields=["recorded_at"], name="build_metrics_recorded_brin"),
        ]
        constraints = [models.CheckConstraint(condition=~Q(name=""), name="build_metrics_name_not_empty")]


class BuildLogChunk(models.Model):
    """A chunk of a build's output, appended by the worker holding it (``append_build_log``; append-only).

    One row per call, never updated, so a long build's log never rewrites a growing text value; read a log in ``id``
    order. ``attempt`` is the attempt it belongs to (``retry_count + 1`` while it ran). No foreign key, like
    ``build_events``: it can become monthly partitions and ``cleanup_old_build_logs`` trims it.
    """

    id = models.BigAutoField(primary_key=True)
    build_id = models.UUIDField()
    attempt = models.SmallIntegerField()
    worker_id = models.CharField(max_length=200)
    chunk = models.TextField()
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        db_table = "build_logs"
        ordering = ["build_id", "id"]
        indexes = [
            models.Index(fields=["build_id", "id"], name="build_logs_build_idx"),
            BrinIndex(fields=["created_at"], name="build_logs_created_brin"),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(chunk=""), name="build_logs_chunk_not_empty"),
            models.CheckConstraint(condition=Q(attempt__gte=1), name="build_logs_attempt_pos"),
        ]


class BuildCacheEntry(models.Model):
    class Visibility(models.TextChoices):
        PRIVATE = "private"
        SHARED = "shared"

    # Time-ordered, as build_queue's (builds.0047_cache_entry_ids): every completion that registers an image inserts
    # one entry, and a random key lands each insert on a random leaf of the primary key and of
    # build_cache_registry_duration_idx, a full-page image in the WAL for most of them after each checkpoint.
    id = uuid_primary_key("build_uuid_v7")
    manifest_hash = models.CharField(max_length=64)
    # No index of its own: build_cache_owner_idx leads with owner_id, and every completion of a build inserts a
    # registry row into each index (builds.0039_cache_owner_index, 0044_completion_cost).
    owner = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="cache_entries", db_index=False)
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.PRIVATE)
    image_reference = models.CharField(max_length=500)
    image_digest = models.CharField(max_length=100)
    architectures = ArrayField(models.CharField(max_length=32), default=list, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    content_sha256 = models.CharField(max_length=64, help_text="SHA-256 of what was registered (integrity).")
    source_build = models.ForeignKey(
        Build, null=True, blank=True, on_delete=models.SET_NULL, related_name="registered_cache_entries"
    )
    build_duration_ms = models.BigIntegerField(
        null=True, blank=True, help_text="How long the build took: what each hit saves."
    )
    hit_count = models.BigIntegerField(default=0)
    last_accessed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    updated_at = models.DateTimeField(db_default=Now(), editable=False)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "build_cache_registry"
        triggers = [
            update_updated_at_column(),
            # The dashboard's time saved per day (build_cache_daily) sums the hit entries' durations: a change to
            # one, or a deleted entry, marks the folded days it was hit (builds/sql/0035_dashboard_rollups.sql).
            FunctionTrigger(
                name="build_cache_registry_rollup_mark_update",
                when=pgtrigger.After,
                operation=pgtrigger.Update,
                condition=pgtrigger.AnyChange("build_duration_ms"),
                execute="build_cache_registry_rollup_mark",
            ),
            FunctionTrigger(
                name="build_cache_registry_rollup_mark_delete",
                when=pgtrigger.After,
                operation=pgtrigger.Delete,
                level=pgtrigger.Statement,
                referencing=pgtrigger.Referencing(old="old_rows"),
                execute="build_cache_registry_rollup_mark",
            ),
            FunctionTrigger(
                name="build_cache_registry_rollup_truncate",
                when=pgtrigger.After,
                operation=pgtrigger.Truncate,
                level=pgtrigger.Statement,
                execute="build_cache_daily_saved_reset",
            ),
            # cache_statistics' time saved per customer and month (BuildCacheAccessMonthly) follows each entry's
            # current duration: a new, changed or deleted entry reprices its folded hits
            # (builds/sql/0041_cache_month_rollup.sql). An entry made by this transaction (created_at defaults to
            # the statement's time, never before now(): every registration) has had no lookups, so nothing to
            # price; only a row inserted with an older created_at (a restored entry) can find folded hits under
            # its id (builds/sql/0044_completion_cost.sql).
            FunctionTrigger(
                name="build_cache_access_reprice_insert",
                when=pgtrigger.After,
                operation=pgtrigger.Insert,
                condition=pgtrigger.Condition("NEW.created_at < now()"),
                execute="build_cache_access_reprice",
            ),
            FunctionTrigger(
                name="build_cache_access_reprice_update",
                when=pgtrigger.After,
                operation=pgtrigger.Update,
                condition=pgtrigger.AnyChange("id", "build_duration_ms"),
                execute="build_cache_access_reprice",
            ),
            FunctionTrigger(
                name="build_cache_access_reprice_delete",
                when=pgtrigger.After,
                operation=pgtrigger.Delete,
                execute="build_cache_access_reprice",
            ),
            FunctionTrigger(
                name="build_cache_access_reprice_truncate",
                when=pgtrigger.After,
                operation=pgtrigger.Truncate,
                level=pgtrigger.Statement,
                execute="build_cache_access_unprice",
            ),
        ]
        ordering = ["-created_at"]
        verbose_name_plural = "build cache entries"
        indexes = [
            models.Index(
                fields=["manifest_hash"],
                name="build_cache_shared_hash_idx",
                condition=Q(visibility="shared", deleted_at__isnull=True),
            ),
            models.Index(fields=["last_accessed_at"], name="build_cache_lru_idx", condition=Q(deleted_at__isnull=True)),
            # The owner's entries: the foreign key's checks, and cache_statistics' storage per owner by an
            # index-only scan (the owners, visibility, sizes and deletion marks, a fraction of the registry's
            # pages). One index for both, so a registration writes one (builds.0044_completion_cost).
            models.Index(
                fields=["owner"], include=["visibility", "size_bytes", "deleted_at"], name="build_cache_owner_idx"
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["manifest_hash", "owner", "visibility"],
                condition=Q(deleted_at__isnull=True),
                name="build_cache_hash_owner_vis_uniq",
            ),
            models.CheckConstraint(condition=Q(manifest_hash__regex=HEX64), name="build_cache_hash_hex"),
            models.CheckConstraint(condition=Q(content_sha256__regex=HEX64), name="build_cache_content_hex"),
            models.CheckConstraint(
                condition=Q(visibility__in=["private", "shared"]), name="build_cache_visibility_valid"
            ),
            models.CheckConstraint(condition=Q(size_bytes__gte=0), name="build_cache_size_pos"),
            models.CheckConstraint(condition=Q(hit_count__gte=0), name="build_cache_hits_pos"),
        ]

    def __str__(self) -> str:
        return f"{self.manifest_hash[:12]} ({self.visibility})"


class BuildAccessLog(models.Model):
    """One cache lookup: a hit or a miss, with its latency (append-only)."""

    id = models.BigAutoField(primary_key=True)
    manifest_hash = models.CharField(max_length=64)
    customer_id = models.UUIDField()
    cache_entry_id = models.UUIDField(null=True, blank=True)
    hit = models.BooleanField()
    latency_us = models.IntegerField(null=True, blank=True)
    accessed_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "build_access_log"
        ordering = ["-accessed_at"]
        indexes = [
            models.Index(fields=["customer_id", "accessed_at"], name="build_access_customer_idx"),
            models.Index(fields=["cache_entry_id", "accessed_at"], name="build_access_entry_idx"),
            BrinIndex(fields=["accessed_at"], name="build_access_accessed_brin"),
        ]
        triggers = [
            # The seed's update_cache_stats: count a hit in the entry's counter shard (BuildCacheHitCounter).
            pgtrigger.Trigger(
                name="update_cache_stats",
                when=pgtrigger.After,
                operation=pgtrigger.Insert,
                condition=pgtrigger.Q(new__hit=True, new__cache_entry_id__isnull=False),
                func=f"""
                    IF partition_row_moving() THEN
                        RETURN NULL;  -- a lookup moved to another month's partition, not a new lookup
                    END IF;
                    INSERT INTO build_cache_hit_counters AS c (cache_entry_id, shard, hits, last_accessed_at)
                    VALUES (NEW.cache_entry_id, pg_backend_pid() % {CACHE_COUNTER_SHARDS}, 1, NEW.accessed_at)
                    ON CONFLICT (cache_entry_id, shard) DO UPDATE
                        SET hits = c.hits + 1,
                            last_accessed_at = greatest(c.last_accessed_at, EXCLUDED.last_accessed_at);
                    RETURN NULL;
                """,
            ),
            # Count every lookup in its (customer, entry) rollup shard (BuildCacheAccessRollup).
            pgtrigger.Trigger(
                name="rollup_cache_access",
                when=pgtrigger.After,
                operation=pgtrigger.Insert,
                func=f"""
                    IF partition_row_moving() THEN
                        RETURN NULL;  -- a lookup moved to another month's partition, not a new lookup
                    END IF;
                    INSERT INTO build_cache_access_rollup AS r (month, customer_id, cache_entry_id, shard, hits, misses)
                    VALUES (date_trunc('month', NEW.accessed_at, 'UTC'), NEW.customer_id,
                            NEW.cache_entry_id, pg_backend_pid() % {CACHE_COUNTER_SHARDS},
                            NEW.hit::int, (NOT NEW.hit)::int)
                    ON CONFLICT (month, customer_id, cache_entry_id, shard) DO UPDATE
                        SET hits = r.hits + EXCLUDED.hits, misses = r.misses + EXCLUDED.misses;
                    RETURN NULL;
                """,
            ),
            # Deleted lookups (the archive's batches of a partial month) stop counting: subtract them, one upsert per
            # (month, customer, entry). A whole month leaves by cache_access_rollup_retire_month instead.
            pgtrigger.Trigger(
                name="rollup_cache_access_delete",
                when=pgtrigger.After,
                operation=pgtrigger.Delete,
                level=pgtrigger.Statement,
                referencing=pgtrigger.Referencing(old="old_rows"),
                func=f"""
                    INSERT INTO build_cache_access_rollup AS r (month, customer_id, cache_entry_id, shard, hits, misses)
                    SELECT date_trunc('month', o.accessed_at, 'UTC'), o.customer_id,
                           o.cache_entry_id, pg_backend_pid() % {CACHE_COUNTER_SHARDS},
                           -count(*) FILTER (WHERE o.hit), -count(*) FILTER (WHERE NOT o.hit)
                      FROM old_rows o
                     GROUP BY 1, 2, 3
                    ON CONFLICT (month, customer_id, cache_entry_id, shard) DO UPDATE
                        SET hits = r.hits + EXCLUDED.hits, misses = r.misses + EXCLUDED.misses;
                    RETURN NULL;
                """,
            ),
            # A lookup whose time moves to another month is counted in that month (the rollup is kept per month so
            # that a month archived whole leaves it by a delete of its rows): the old month's count moves with it.
            pgtrigger.Trigger(
                name="rollup_cache_access_move",
                when=pgtrigger.After,
                operation=pgtrigger.Update,
                level=pgtrigger.Statement,
                referencing=pgtrigger.Referencing(old="old_rows", new="new_rows"),
                func=f"""
                    INSERT INTO build_cache_access_rollup AS r (month, customer_id, cache_entry_id, shard, hits, misses)
                    SELECT d.month, d.customer_id, d.cache_entry_id, pg_backend_pid() % {CACHE_COUNTER_SHARDS},
                           sum(d.hits), sum(d.misses)
                      FROM (SELECT date_trunc('month', n.accessed_at, 'UTC') AS month,
                                   n.customer_id, n.cache_entry_id, n.hit::int AS hits, (NOT n.hit)::int AS misses
                              FROM new_rows n
                            UNION ALL
                            SELECT date_trunc('month', o.accessed_at, 'UTC'),
                                   o.customer_id, o.cache_entry_id, -o.hit::int, -(NOT o.hit)::int
                              FROM old_rows o) d
                     GROUP BY 1, 2, 3
                    HAVING sum(d.hits) <> 0 OR sum(d.misses) <> 0
                    ON CONFLICT (month, customer_id, cache_entry_id, shard) DO UPDATE
                        SET hits = r.hits + EXCLUDED.hits, misses = r.misses + EXCLUDED.misses;
                    RETURN NULL;
                """,
            ),
            # A lookup's customer, entry and outcome never change (the rollup counts them where they were).
            pgtrigger.Protect(
                name="build_access_log_keep_rollup_key",
                operation=pgtrigger.Update,
                condition=pgtrigger.AnyChange("customer_id", "cache_entry_id", "hit"),
            ),
            # Emptying the log empties its rollup.
            pgtrigger.Trigger(
                name="rollup_cache_access_truncate",
                when=pgtrigger.After,
                operation=pgtrigger.Truncate,
                level=pgtrigger.Statement,
                func="DELETE FROM build_cache_access_rollup; DELETE FROM build_cache_access_monthly; RETURN NULL;",
            ),
            # The dashboard's cache figures per closed day (build_cache_daily): a lookup inserted into a past day,
            # moved or deleted marks the folded day (builds/sql/0035_dashboard_rollups.sql). Today's lookups, the hot
            # path, do not get past the insert trigger's WHEN.
            FunctionTrigger(
                name="build_access_log_rollup_mark_insert",
                when=pgtrigger.After,
                operation=pgtrigger.Insert,
                condition=pgtrigger.Condition("NEW.accessed_at < date_trunc('day', now(), 'UTC')"),
                execute="build_access_log_rollup_mark",
            ),
            FunctionTrigger(
                name="build_access_log_rollup_mark_update",
                when=pgtrigger.After,
                operation=pgtrigger.Update,
                level=pgtrigger.Statement,
                referencing=pgtrigger.Referencing(old="old_rows", new="new_rows"),
                execute="build_access_log_rollup_mark",
            ),
            FunctionTrigger(
                name="build_access_log_rollup_mark_delete",
                when=pgtrigger.After,
                operation=pgtrigger.Delete,
                level=pgtrigger.Statement,
                referencing=pgtrigger.Referencing(old="old_rows"),
                execute="build_access_log_rollup_mark",
            ),
            FunctionTrigger(
                name="build_access_log_rollup_truncate",
                when=pgtrigger.After,
                operation=pgtrigger.Truncate,
                level=pgtrigger.Statement,
                execute="build_cache_daily_reset",
            ),
        ]


class BuildCacheAccessRollup(models.Model):
    """Lookups of the access log counted per (UTC month, customer, cache entry), for ``cache_statistics``.

    Partitioned by ``month`` (one partition per month, created ahead by ``maintain_partitions``, and a DEFAULT one),
    like the log; the database's primary key is (id, month), the ORM's ``id``.

    The ``rollup_cache_access`` trigger counts each new lookup in the shard of its database session
    (``pg_backend_pid() % CACHE_COUNTER_SHARDS``), so concurrent lookups of one hot entry never queue behind one row;
    deleting log rows (the archive's batches) subtracts them and moving a lookup to another month moves its count,
    so the rollup always equals the retained log, exactly and in the same transaction. ``fold_cache_access_rollup()``
    (hourly) moves the shards into the folded row (shard -1), adds them to ``BuildCacheAccessMonthly`` and drops
    rows that count nothing. A month archived whole leaves by ``cache_access_rollup_retire_month()``: its partition
    is detached and dropped (builds/sql/0041_cache_month_rollup.sql). ``cache_entry_id`` is NULL for misses without an
    entry; no foreign key, like the log.
    """

    id = models.BigAutoField(primary_key=True)
    month = models.DateTimeField(help_text="The start of the lookups' UTC month; the partition key.")
    customer_id = models.UUIDField()
    cache_entry_id = models.UUIDField(null=True, blank=True)
    shard = models.SmallIntegerField(help_text="The counting session's shard; -1 is the folded row.")
    hits = models.BigIntegerField(default=0)
    misses = models.BigIntegerField(default=0)

    class Meta:
        db_table = "build_cache_access_rollup"
        constraints = [
            # Includes the partition key, as PostgreSQL requires of a unique index on a partitioned table. In the
            # database it is a unique index, not a constraint, so that each month's partition's own unique index
            # attaches to it (builds/sql/0041_cache_month_rollup.sql); ON CONFLICT infers it all the same.
            models.UniqueConstraint(
                fields=["month", "customer_id", "cache_entry_id", "shard"],
                nulls_distinct=False,
                name="build_cache_access_rollup_month_key",
            ),
            models.CheckConstraint(
                condition=Q(shard__gte=-1, shard__lt=CACHE_COUNTER_SHARDS), name="build_cache_access_rollup_shard"
            ),
        ]
        indexes = [
            # The shards' rows not folded yet: the hourly fold finds them without reading every folded row
            # (builds.0040_cache_fold), and cache_statistics prices them at the entries' durations.
            models.Index(fields=["shard"], name="build_cache_access_delta_idx", condition=Q(shard__gte=0)),
            # An entry's folded hits, which a change of its duration reprices (build_cache_access_reprice).
            models.Index(fields=["cache_entry_id"], name="build_cache_access_entry_idx", condition=Q(shard=-1)),
            # One customer's shards not folded yet: cache_statistics read for one customer probes them, whatever the
            # other customers' lookups since the last fold (builds.0046_cache_statistics_per_customer).
            models.Index(fields=["customer_id"], name="build_cache_delta_customer_idx", condition=Q(shard__gte=0)),
        ]


class BuildCacheAccessMonthly(models.Model):
    """One customer's folded lookups of one UTC month, with the time they saved: what ``cache_statistics`` reads.

    ``fold_cache_access_rollup()`` adds the folded shards of ``BuildCacheAccessRollup`` here, priced at each
    entry's ``build_duration_ms`` at the fold; the ``build_cache_access_reprice`` trigger on the registry adds
    (new - old duration) x the entry's folded hits of each row when a duration changes (and removes a deleted
    entry's), so ``time_saved_ms`` is always the folded hits x the entries' current durations. The view adds the
    shards not folded yet, priced as it reads them. A month archived whole deletes its rows (one per customer).
    Invariant: the sums of the folded ``BuildCacheAccessRollup`` rows of a (month, customer) are this row's hits
    and misses.
    """

    id = models.BigAutoField(primary_key=True)
    month = models.DateTimeField(help_text="The start of the lookups' UTC month.")
    customer_id = models.UUIDField()
    hits = models.BigIntegerField(default=0)
    misses = models.BigIntegerField(default=0)
    time_saved_ms = models.BigIntegerField(default=0, help_text="The hits x their entries' current durations.")

    class Meta:
        db_table = "build_cache_access_monthly"
        constraints = [
            models.UniqueConstraint(fields=["month", "customer_id"], name="build_cache_access_monthly_key"),
        ]
        indexes = [
            # One customer's months: cache_statistics read for one customer probes them (the key leads with the
            # month). Not covering, so a fold's update of the counts can stay HOT
            # (builds.0046_cache_statistics_per_customer).
            models.Index(fields=["customer_id"], name="build_cache_month_customer_idx"),
        ]


class BuildDailyRollup(models.Model):
    """One customer's finished builds of one closed UTC day, as ``build_performance_summary`` reports them.

    A build belongs to the day of its ``finished_at`` (UTC), as in the view. ``fold_build_daily_rollup()`` (hourly)
    folds closed days in order, a bounded number per call, and moves ``BuildDailyRollupState.folded_through``;
    it re-folds every day marked in ``BuildDailyRollupDirty`` (a finished build of a folded day changed or was
    deleted) and no other (builds/sql/0042_fold_dirty_days.sql), and a day re-folded gives the same row. The view
    reads these rows for the folded days and the queue itself for the rest (builds/sql/0032_daily_rollup.sql). The
    sums let a range's averages be derived from several days. No foreign key: the view joins the customer, like
    the queue's rows did.
    """

    id = models.BigAutoField(primary_key=True)
    customer_id = models.UUIDField()
    day = models.DateField()
    total_builds = models.BigIntegerField()
    succeeded = models.BigIntegerField()
    failed = models.BigIntegerField()
    timed_out = models.BigIntegerField()
    cancelled = models.BigIntegerField()
    cache_hits = models.BigIntegerField()
    success_rate = models.DecimalField(max_digits=8, decimal_places=4, null=True)
    avg_duration_seconds = models.DecimalField(max_digits=18, decimal_places=3, null=True)
    p50_duration_seconds = models.DecimalField(max_digits=18, decimal_places=3, null=True)
    p95_duration_seconds = models.DecimalField(max_digits=18, decimal_places=3, null=True)
    avg_queue_wait_seconds = models.DecimalField(max_digits=18, decimal_places=3, null=True)
    p95_queue_wait_seconds = models.DecimalField(max_digits=18, decimal_places=3, null=True)
    started_builds = models.BigIntegerField(help_text="Builds of the day with a start (the durations' count).")
    duration_seconds_sum = models.DecimalField(max_digits=24, decimal_places=6, null=True)
    queue_wait_seconds_sum = models.DecimalField(max_digits=24, decimal_places=6, null=True)
    folded_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "build_daily_rollup"
        constraints = [
            models.UniqueConstraint(fields=["customer_id", "day"], name="build_daily_rollup_key"),
            models.CheckConstraint(
                condition=Q(total_builds__gte=F("succeeded") + F("failed") + F("timed_out") + F("cancelled")),
                name="build_daily_rollup_counts",
            ),
        ]
        indexes = [models.Index(fields=["day"], name="build_daily_rollup_day_idx")]


class BuildDailyRollupState(models.Model):
    """The single row saying up to which UTC day (inclusive) ``build_daily_rollup`` holds every customer's days;
    NULL: nothing folded yet (the view reads the whole queue)."""

    id = models.SmallIntegerField(primary_key=True, default=1)
    folded_through = models.DateField(null=True, blank=True)

    class Meta:
        db_table = "build_daily_rollup_state"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="build_daily_rollup_state_one_row")]


class BuildDailyRollupDirty(models.Model):
    """A folded day whose finished builds changed since it was folded: read live until it is re-folded."""

    day = models.DateField(primary_key=True)
    marked_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "build_daily_rollup_dirty"


class BuildActivityDaily(models.Model):
    """The dashboard's build activity of one closed UTC day (issue 15): one row per (day, customer) and one per day
    over every customer (``customer_id`` NULL), as ``console.selectors.build_activity`` reads ``build_results``.

    An attempt belongs to the day of its result's ``created_at``; the customer rows join the result's build, the
    all-customer row reads every result. ``queue_wait_ms`` holds the day's waits (sorted, NULLs left out), so a
    percentile over one day or several, for one customer or all, is the same ``percentile_cont`` over the same
    values; ``wait_p50_ms``/``wait_p95_ms`` are the day's own, computed when the day is folded. ``cache_served``
    counts the builds created that day and served from the cache. Folded, re-folded and marked dirty with
    ``build_daily_rollup`` (``fold_build_daily_rollup``, builds/sql/0033_dashboard_rollup.sql).
    """

    id = models.BigAutoField(primary_key=True)
    customer_id = models.UUIDField(null=True, blank=True)
    day = models.DateField()
    succeeded = models.BigIntegerField()
    failed = models.BigIntegerField()
    timed_out = models.BigIntegerField()
    cancelled = models.BigIntegerField()
    duration_ms_sum = models.BigIntegerField()
    timed = models.BigIntegerField(help_text="Attempts with a duration (the average's count).")
    queue_wait_ms = ArrayField(models.BigIntegerField(), default=list)
    wait_p50_ms = models.FloatField(null=True)
    wait_p95_ms = models.FloatField(null=True)
    cache_served = models.BigIntegerField()
    folded_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "build_activity_daily"
        constraints = [
            models.UniqueConstraint(
                fields=["day", "customer_id"], name="build_activity_daily_key", nulls_distinct=False
            ),
        ]


class BuildActivityHourly(models.Model):
    """The dashboard's build activity of one hour of a closed UTC day (issue 15), for its 24-hour and 7-day ranges:
    one row per (hour, customer) and one per hour over every customer (``customer_id`` NULL), the same figures as
    ``BuildActivityDaily`` by the hour of the result's ``created_at`` (``queue_wait_ms`` sorted, so a percentile
    over one hour or six is the same ``percentile_cont`` over the same values). Folded, re-folded and marked dirty
    by day with ``build_daily_rollup`` (builds/sql/0035_dashboard_rollups.sql): a folded day's hours are replaced
    whole."""

    id = models.BigAutoField(primary_key=True)
    customer_id = models.UUIDField(null=True, blank=True)
    hour = models.DateTimeField()
    succeeded = models.BigIntegerField()
    failed = models.BigIntegerField()
    timed_out = models.BigIntegerField()
    cancelled = models.BigIntegerField()
    duration_ms_sum = models.BigIntegerField()
    timed = models.BigIntegerField(help_text="Attempts with a duration (the average's count).")
    queue_wait_ms = ArrayField(models.BigIntegerField(), default=list)
    cache_served = models.BigIntegerField()
    folded_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "build_activity_hourly"
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "customer_id"], name="build_activity_hourly_key", nulls_distinct=False
            ),
        ]


class BuildCacheDaily(models.Model):
    """The dashboard's cache figures of one closed UTC day (issue 15): lookups of ``build_access_log`` by the day
    of ``accessed_at``, hits, misses, and the build time the hits saved (the hit entry's ``build_duration_ms``).

    Kept for the last ``build_cache_daily_days()`` closed days only (the dashboard reads 30): the fold drops older
    days, and the marks ignore changes to them, so the access log's archive of old months costs no re-fold.
    Folded, re-folded and marked dirty with ``build_daily_rollup``; a lookup of a folded day inserted, moved or
    deleted, or a hit entry whose duration changed or which was deleted, marks the day
    (builds/sql/0035_dashboard_rollups.sql)."""

    day = models.DateField(primary_key=True)
    hits = models.BigIntegerField()
    misses = models.BigIntegerField()
    saved_ms = models.BigIntegerField()
    folded_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "build_cache_daily"


class BuildCacheHitCounter(models.Model):
    """Hits of a cache entry not yet folded into ``build_cache_registry.hit_count`` (one row per shard).

    Each hit increments the shard of its database session (``pg_backend_pid() % CACHE_COUNTER_SHARDS``) instead of
    the entry's own row, so concurrent hits on one hot entry do not queue behind one row lock; a session never
    contends with itself. ``fold_cache_hit_counters()`` moves the shards into the entry (hourly, and before
    eviction). An entry's exact hit count is ``hit_count + sum(hits)`` of its shards (``cache_entry_usage``).
    No foreign key: the shards of a purged entry are dropped by the next fold.
    """

    pk = models.CompositePrimaryKey("cache_entry_id", "shard")
    cache_entry_id = models.UUIDField()
    shard = models.SmallIntegerField()
    hits = models.BigIntegerField()
    last_accessed_at = models.DateTimeField()

    class Meta:
        db_table = "build_cache_hit_counters"
        constraints = [
            models.CheckConstraint(condition=Q(hits__gt=0), name="build_cache_hit_counters_hits_pos"),
            models.CheckConstraint(
                condition=Q(shard__gte=0, shard__lt=CACHE_COUNTER_SHARDS), name="build_cache_hit_counters_shard"
            ),
        ]


class CacheStatistics(models.Model):
    """A row of the ``cache_statistics`` view (read-only): one per customer, and the overall row (id 'overall')."""

    id = models.TextField(primary_key=True, help_text="The customer's id, or 'overall'.")
    scope = models.CharField(max_length=16)
    customer = models.ForeignKey(
        Customer, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    customer_name = models.CharField(max_length=200, null=True)
    lookups = models.BigIntegerField()
    hits = models.BigIntegerField()
    misses = models.BigIntegerField()
    hit_rate = models.DecimalField(max_digits=30, decimal_places=20)
    entries = models.BigIntegerField()
    shared_entries = models.BigIntegerField()
    bytes_stored = models.BigIntegerField()
    time_saved_ms = models.BigIntegerField()
    time_saved = models.DurationField()

    class Meta:
        managed = False
        db_table = "cache_statistics"
        verbose_name_plural = "cache statistics"
        ordering = ["scope", "-hits"]

    def __str__(self) -> str:
        return self.customer_name or "overall"
