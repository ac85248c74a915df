"""manage.py evaluate_extractor: figures per field and split, the targets, and the record the view shows."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from intake.models import ExtractionAccuracy, ExtractionEvaluation, RequirementExtraction


def test_rule_based_extractor_meets_the_targets(db):
    """The default extractor meets the targets on the evaluation set (this is the CI gate) and the run is
    recorded per split and type, apart from production extractions, and shown by extraction_accuracy."""
    out = StringIO()
    call_command("evaluate_extractor", stdout=out)
    text = out.getvalue()
    for heading in ("[dev]", "[test]", "[all]", "micro", "exact matches", "corrections honoured", "targets met"):
        assert heading in text
    assert ExtractionEvaluation.objects.count() == 2 * 7
    assert not RequirementExtraction.objects.exists()
    package = ExtractionAccuracy.objects.get(requirement_type="package")
    assert package.extractions == 0 and package.evaluation_f1 is not None
    assert package.evaluation_extractor == "intake.extractors.RuleBasedExtractor"


def test_extractor_below_target_fails(db):
    """A version-1 extractor that reads one message alone misses corrections: the command exits 1 and says why."""
    with pytest.raises(CommandError, match="below target") as info:
        call_command(
            "evaluate_extractor",
            "--extractor=tests.intake.test_extractors.OldStyleExtractor",
            "--no-record",
            stdout=StringIO(),
        )
    assert info.value.returncode == 1
    assert not ExtractionEvaluation.objects.exists()


def test_malformed_case_file_is_refused(db, tmp_path):
    """A case file with an unknown field names its line and exits 2."""
    cases = tmp_path / "cases.jsonl"
    cases.write_text(json.dumps({"id": "x", "split": "dev", "turns": ["hi"], "expect": {"colour": ["red"]}}) + "\n")
    with pytest.raises(CommandError, match=r"cases\.jsonl line 1") as info:
        call_command("evaluate_extractor", f"--cases={cases}", stdout=StringIO())
    assert info.value.returncode == 2


def test_evaluation_set_is_large_varied_and_split():
    """At least 150 cases, a held-out split, multi-turn corrections and nothing-to-extract cases."""
    from intake.evaluation import load_cases

    cases = load_cases()
    assert len(cases) >= 150
    assert len({c.id for c in cases}) == len(cases)
    assert 0.25 <= sum(c.split == "test" for c in cases) / len(cases) <= 0.5
    assert sum(bool(c.corrects) for c in cases) >= 20
    assert sum(not any(c.expect.values()) for c in cases) >= 10
