import inspect
import random
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from honua.registry import demo_loaders

SCALES = ["demo", "six-months", "ten-x"]
BAR_WIDTH = 30


class Command(BaseCommand):
    help = (
        "Load the demo data of every app (customers, licenses, builds, conversations), in one transaction; the "
        "six-month and ten-x volumes in their own (on two connections when the database is fresh). "
        "Idempotent: running it again adds nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--scale",
            choices=SCALES,
            default="demo",
            help="How much data: 'demo' is a small, hand-shaped set for trying the admin; 'six-months' is the "
            "seed's estimate for 100 customers over six months (1M cache lookups, 50k builds, 500k build events, "
            "10k conversations with 100k messages...), generated set-based in about a minute; 'ten-x' is ten times "
            "that (1,000 customers, every volume times ten: issue 15's scale benchmark).",
        )
        parser.add_argument("--seed", type=int, default=1, help="Random seed, so the data set is repeatable.")
        parser.add_argument(
            "--fraction",
            type=float,
            default=1.0,
            help="Scale the six-months (or ten-x) volumes by this fraction, in (0, 1] (for quick trials); default 1.",
        )

    def handle(self, *args, scale, seed, fraction, **options):
        if not 0 < fraction <= 1:
            raise CommandError(f"--fraction must be greater than 0 and at most 1, got {fraction}", returncode=2)
        rng = random.Random(seed)
        loaders = demo_loaders()
        verbosity = options["verbosity"]
        extras = {"seed": seed, "fraction": fraction, "progress": self._progress_bar() if verbosity >= 1 else None}
        with transaction.atomic():
            for loader in loaders:
                if loader.atomic:
                    self._load(loader, rng, scale, extras, verbosity)
        # The loaders that commit themselves (the six-month volume, possibly on two connections), after the others.
        for loader in loaders:
            if not loader.atomic:
                self._load(loader, rng, scale, extras, verbosity)
        if not loaders and verbosity >= 1:
            self.stdout.write("no app provides demo data yet")

    def _load(self, loader, rng, scale, extras, verbosity) -> None:
        accepted = inspect.signature(loader.load).parameters
        kwargs = {name: value for name, value in extras.items() if name in accepted}
        summary = loader.load(rng=rng, scale=scale, **kwargs)
        if verbosity >= 1:
            self.stdout.write(f"{loader.name}: {summary}")

    def _progress_bar(self):
        """A progress(done, total, label) callback drawing a bar (redrawn in place on a terminal)."""
        start = time.monotonic()
        interactive = self.stdout.isatty()

        def progress(done: int, total: int, label: str) -> None:
            filled = BAR_WIDTH * done // max(total, 1)
            elapsed = time.monotonic() - start
            line = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} {label:<40} {elapsed:6.1f} s"
            if interactive:
                self.stdout.write("\r" + line, ending="\n" if done == total else "")
                self.stdout.flush()
            else:
                self.stdout.write(line)

        return progress
