from django.core.management.base import BaseCommand, CommandError

from builds.cache.selectors import cache_entries_verify
from builds.cache.services import cache_entries_evict_selected


class Command(BaseCommand):
    help = (
        "Verify the build cache's integrity: report live entries whose recorded content SHA-256 no longer matches "
        "their image and their source build's image artifacts. Exits with status 1 when any is found."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--evict",
            action="store_true",
            help="Also evict the entries that fail verification (except those a queued or running build uses).",
        )

    def handle(self, *args, evict, **options):
        corrupt = cache_entries_verify()
        for entry in corrupt:
            self.stdout.write(
                f"{entry.cache_entry_id} hash {entry.manifest_hash[:12]} owner {entry.owner_id}: {entry.problem} "
                f"(recorded {entry.recorded_sha256[:12]}, now {entry.actual_sha256[:12]})"
            )
        if not corrupt:
            if options["verbosity"] >= 1:
                self.stdout.write(self.style.SUCCESS("every live cache entry verified"))
            return
        if evict:
            evicted, skipped = cache_entries_evict_selected(entry_ids=[entry.cache_entry_id for entry in corrupt])
            self.stdout.write(f"evicted {evicted}; {skipped} in use by queued or running builds kept")
        raise CommandError(f"{len(corrupt)} cache entries failed verification", returncode=1)
