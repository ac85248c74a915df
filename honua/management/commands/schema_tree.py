from pathlib import Path

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from honua.schema_tree import compare_tree, render_tree, tree_on_disk, write_tree
from honua.scratch_db import run_manage, scratch_database


class Command(BaseCommand):
    help = (
        "Write the current definition of every SQL function, procedure, view and trigger into <app>/sql/current/ "
        "(one file per object), read from a freshly migrated scratch database on the configured server (created "
        "and dropped by this command). With --check, change nothing and exit 1 naming each file that differs."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--check", action="store_true", help="Only compare the committed tree with the migrations' result."
        )

    def handle(self, *args, **options):
        root = Path(settings.BASE_DIR)
        with scratch_database("schema_tree") as url:
            migrated = run_manage(url, "migrate", "--no-input", "--verbosity", "0")
            if migrated.returncode:
                raise CommandError(f"migrating the scratch database failed:\n{migrated.stderr}", returncode=2)
            with psycopg.connect(url) as scratch, scratch.cursor() as cursor:
                expected = render_tree(cursor)
        if options["check"]:
            problems = compare_tree(expected, tree_on_disk(root))
            for problem in problems:
                self.stderr.write(self.style.ERROR(problem))
            if problems:
                raise CommandError(
                    f"{len(problems)} file(s) of the schema tree disagree with the migrations; "
                    "run `python manage.py schema_tree`",
                    returncode=1,
                )
            self.stdout.write(self.style.SUCCESS(f"The schema tree matches the migrations ({len(expected)} files)."))
            return
        written, deleted = write_tree(root, expected, tree_on_disk(root))
        for path in written:
            if options["verbosity"] >= 2:
                self.stdout.write(f"wrote {path}")
        for path in deleted:
            self.stdout.write(f"deleted {path}")
        summary = f"{len(expected)} files in the schema tree; {len(written)} written, {len(deleted)} deleted."
        self.stdout.write(self.style.SUCCESS(summary))
