"""Score the configured requirement extractor on the evaluation set; fail below the targets."""

import uuid
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.module_loading import import_string

from intake.evaluation import (
    CASES_PATH,
    FIELDS,
    SPLITS,
    TARGET_EXACT,
    TARGET_MICRO_F1,
    Evaluation,
    SplitScore,
    evaluate,
    load_cases,
)
from intake.extractors import as_conversation_extractor
from intake.models import ExtractionEvaluation


class Command(BaseCommand):
    help = (
        "Run the configured extractor (HONUA_INTAKE_EXTRACTOR, or --extractor) on the evaluation set and print "
        "per-field precision, recall and F1 and the exact-match share, for the dev split, the held-out test split "
        f"and both. Exits 1 below the targets (micro-F1 >= {TARGET_MICRO_F1}, exact >= {TARGET_EXACT:.0%}, every "
        "multi-turn correction honoured, over all cases). Records the run in extraction_evaluations (shown by the "
        "extraction_accuracy view) unless --no-record."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--extractor", help="Dotted path of the extractor class to evaluate (default: HONUA_INTAKE_EXTRACTOR)."
        )
        parser.add_argument(
            "--cases", type=Path, default=CASES_PATH, help="The evaluation set, JSON lines (default: the project's)."
        )
        parser.add_argument("--no-record", action="store_true", help="Do not record the run in the database.")
        parser.add_argument(
            "--calibration", action="store_true", help="Also print, per confidence level, how many findings were right."
        )
        parser.add_argument(
            "--failures", choices=["dev", "test", "all"], help="List the cases of that split that were not exact."
        )

    def handle(self, *args, **options):
        self.verbosity = options["verbosity"]
        path = options["extractor"] or settings.HONUA_INTAKE_EXTRACTOR
        try:
            extractor = as_conversation_extractor(import_string(path)(), path=path)
            cases = load_cases(options["cases"])
        except (ImportError, ValueError, OSError) as error:
            raise CommandError(str(error), returncode=2) from None
        evaluation = evaluate(extractor, cases)
        self.stdout.write(f"extractor {path}, {len(cases)} cases ({options['cases'].name})")
        for split in (*SPLITS, None):
            self._report(split or "all", evaluation.score(split))
        if options["calibration"]:
            self._calibration(evaluation)
        if options["failures"]:
            self._failures(evaluation, options["failures"])
        if not options["no_record"]:
            self._record(path, evaluation)
        overall = evaluation.score()
        if not evaluation.meets_targets():
            raise CommandError(
                f"below target: micro-F1 {overall.micro.f1:.3f} (>= {TARGET_MICRO_F1}), exact "
                f"{overall.exact_share:.1%} (>= {TARGET_EXACT:.0%}), corrections not honoured: "
                f"{', '.join(overall.corrections_failed) or 'none'}",
                returncode=1,
            )
        self.stdout.write(self.style.SUCCESS("targets met"))

    def _report(self, name: str, score: SplitScore) -> None:
        self.stdout.write(f"\n[{name}] {score.cases} cases")
        self.stdout.write(f"  {'field':<13} {'P':>6} {'R':>6} {'F1':>6} {'tp':>5} {'fp':>4} {'fn':>4}")
        for field, counts in [*score.fields.items(), ("micro", score.micro)]:
            self.stdout.write(
                f"  {field:<13} {counts.precision:6.3f} {counts.recall:6.3f} {counts.f1:6.3f} "
                f"{counts.true_positives:5d} {counts.false_positives:4d} {counts.false_negatives:4d}"
            )
        self.stdout.write(f"  exact matches {score.exact}/{score.cases} ({score.exact_share:.1%})")
        honoured = score.correction_cases - len(score.corrections_failed)
        failed = f" (not: {', '.join(score.corrections_failed)})" if score.corrections_failed else ""
        self.stdout.write(f"  corrections honoured {honoured}/{score.correction_cases}{failed}")

    def _calibration(self, evaluation: Evaluation) -> None:
        self.stdout.write("\nconfidence  findings  right  share")
        for level, (found, right) in evaluation.calibration().items():
            self.stdout.write(f"  {level}    {found:6d} {right:6d}  {right / found:.2f}")

    def _failures(self, evaluation: Evaluation, split: str) -> None:
        self.stdout.write("")
        for result in evaluation.results:
            if result.exact or (split != "all" and result.case.split != split):
                continue
            diffs = {
                f: {
                    "extra": sorted(result.actual[f] - result.case.expect[f]),
                    "missing": sorted(result.case.expect[f] - result.actual[f]),
                }
                for f in FIELDS
                if result.actual[f] != result.case.expect[f]
            }
            self.stdout.write(f"  {result.case.id} ({result.case.split}): {diffs}")

    def _record(self, path: str, evaluation: Evaluation) -> None:
        run_id = uuid.uuid4()
        with transaction.atomic():
            for split in SPLITS:
                score = evaluation.score(split)
                ExtractionEvaluation.objects.bulk_create(
                    ExtractionEvaluation(
                        run_id=run_id,
                        extractor=path[:200],
                        split=split,
                        requirement_type=field,
                        true_positives=counts.true_positives,
                        false_positives=counts.false_positives,
                        false_negatives=counts.false_negatives,
                        cases=score.cases,
                        exact_cases=score.exact,
                    )
                    for field, counts in score.fields.items()
                )
        if self.verbosity >= 1:
            self.stdout.write(f"\nrecorded as evaluation run {run_id}")
