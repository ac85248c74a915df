from django.core.management.base import BaseCommand, CommandError

from builds.cache.services import CacheError, cache_entries_evict, cache_eviction_policy


def _non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Evict build cache entries: expired ones, those older than --max-age-days, those idle (not used) for more "
        "than --max-idle-days, then the least recently used until the cache is under --max-total-bytes. Never "
        "an entry a queued or running build depends on. Entries are soft-deleted (purged later)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--max-age-days",
            type=_non_negative,
            help="Evict entries registered more than this many days ago (0: no age limit). "
            "Default: BUILD_CACHE_MAX_AGE_DAYS.",
        )
        parser.add_argument(
            "--max-idle-days",
            type=_non_negative,
            help="Evict entries not used for this many days (0: no idle limit). Default: BUILD_CACHE_MAX_IDLE_DAYS.",
        )
        parser.add_argument(
            "--max-total-bytes",
            type=_non_negative,
            help="Evict least recently used entries until the live entries total at most this many bytes "
            "(0: no size limit). Default: BUILD_CACHE_MAX_TOTAL_BYTES.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Show what would be evicted, and change nothing.")

    def handle(self, *args, max_age_days, max_idle_days, max_total_bytes, dry_run, **options):
        policy = cache_eviction_policy(
            max_age_days=max_age_days, max_idle_days=max_idle_days, max_total_bytes=max_total_bytes
        )
        try:
            evicted = cache_entries_evict(**policy, dry_run=dry_run)
        except CacheError as error:
            raise CommandError(str(error), returncode=2) from None
        verb = "would evict" if dry_run else "evicted"
        if options["verbosity"] >= 2 or dry_run:
            for entry in evicted:
                self.stdout.write(
                    f"{verb} {entry.cache_entry_id} hash {entry.manifest_hash[:12]} owner {entry.owner_id} "
                    f"({entry.reason}, {entry.size_bytes} bytes, last used {entry.last_used_at:%Y-%m-%d %H:%M})"
                )
        freed = sum(entry.size_bytes for entry in evicted)
        summary = f"{verb} {len(evicted)} cache entries ({freed} bytes)"
        if options["verbosity"] >= 1:
            self.stdout.write(self.style.WARNING(summary) if dry_run else self.style.SUCCESS(summary))
