import json

from django.core.management.base import BaseCommand, CommandError

from honua.maintenance_runner import ALL, MaintenanceError, TaskOutcome, run_maintenance
from honua.registry import SCHEDULES


class Command(BaseCommand):
    help = (
        "Run the maintenance tasks of a schedule (from cron, a systemd timer or pg_cron; see docs/operations.md). "
        "Each task runs in its own transaction and is recorded in maintenance_runs; a run that overlaps another "
        "of the same schedule does nothing and exits 0. Exits 1 if any task failed, 2 on bad input."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "schedule",
            choices=[*SCHEDULES, ALL],
            help="Which tasks to run: those of one schedule, or 'all' (every schedule, hourly first).",
        )
        parser.add_argument("--only", metavar="TASK", help="Run only this task (it must belong to the schedule).")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Change nothing: report what each task would change (transactional tasks run and roll back).",
        )
        parser.add_argument(
            "--format",
            dest="output_format",
            choices=["text", "json"],
            default="text",
            help="text (default) for people, json for monitoring (one object on stdout).",
        )

    def handle(self, *args, schedule, only, dry_run, output_format, **options):
        verbosity = options["verbosity"]
        as_text = output_format == "text"

        def show(outcome: TaskOutcome) -> None:
            if not as_text or verbosity < 1:
                return
            rows = f"{outcome.rows} row(s)" + (" would change" if dry_run else "")
            line = f"  {outcome.task:<32} {outcome.outcome:<9} {rows:<24} {outcome.duration_ms:>7} ms"
            if outcome.detail and verbosity >= 1:
                line += f"  {outcome.detail}"
            if outcome.ok:
                self.stdout.write(line)
            else:
                self.stdout.write(self.style.ERROR(line + f"  {outcome.error}"))

        if as_text and verbosity >= 1:
            self.stdout.write(
                f"run_maintenance {schedule}" + (" --only " + only if only else "") + (" (dry run)" if dry_run else "")
            )
        try:
            report = run_maintenance(schedule, only=only, dry_run=dry_run, on_task=show)
        except MaintenanceError as exc:
            raise CommandError(str(exc), returncode=2) from None

        if not as_text:
            self.stdout.write(json.dumps(report.as_dict()))
        elif report.locked_out:
            self.stdout.write(
                self.style.WARNING(
                    f"maintenance ({', '.join(report.locked_out)}) is already running in another session; nothing done"
                )
            )
        elif verbosity >= 1:
            if not report.tasks:
                self.stdout.write(f"no maintenance task is registered for {schedule}")
            else:
                done = len(report.tasks) - len(report.failed)
                summary = f"{done} task(s) succeeded, {len(report.failed)} failed in {report.duration_ms} ms"
                style = self.style.SUCCESS if report.ok else self.style.ERROR
                self.stdout.write(style(summary))
        if report.failed:
            names = ", ".join(outcome.task for outcome in report.failed)
            raise CommandError(f"{len(report.failed)} maintenance task(s) failed: {names}", returncode=1)
