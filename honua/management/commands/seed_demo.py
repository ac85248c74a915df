import random

from django.core.management.base import BaseCommand
from django.db import transaction

from honua.registry import demo_loaders


class Command(BaseCommand):
    help = "Load the demo data set of every app (customers, licenses, builds, conversations), in one transaction."

    def add_arguments(self, parser):
        parser.add_argument(
            "--scale",
            choices=["demo"],
            default="demo",
            help="How much data: 'demo' is a small, hand-shaped set for trying the admin.",
        )
        parser.add_argument("--seed", type=int, default=1, help="Random seed, so the data set is repeatable.")

    def handle(self, *args, scale, seed, **options):
        rng = random.Random(seed)
        loaders = demo_loaders()
        with transaction.atomic():
            for loader in loaders:
                summary = loader.load(rng=rng, scale=scale)
                if options["verbosity"] >= 1:
                    self.stdout.write(f"{loader.name}: {summary}")
        if not loaders and options["verbosity"] >= 1:
            self.stdout.write("no app provides demo data yet")
