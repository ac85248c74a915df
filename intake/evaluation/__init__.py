"""The extractor's evaluation set and its scoring (after spaCy's per-field precision / recall / F1).

``cases.jsonl`` holds one request per line, written by hand to be realistic (single and multi-turn, typos, other
languages' words, nothing to extract), never tuned to an extractor::

    {"id": "c021", "split": "dev", "turns": ["python 3.12 with gdal and proj for arm64",
     "actually make it arm64 only... and drop proj"], "expect": {"language": ["python 3.12"], ...},
     "corrects": ["package", "architecture"]}

A turn is a user message, or ``{"assistant": "..."}`` for the assistant's. ``expect`` is what the conversation asks
for in the end, per requirement type (the values ``intake.extractors`` documents); a type not named expects nothing.
``corrects`` names the types a later turn corrects: the case honours its corrections when those come out exactly.
Held out (``split: test``): one in three of the first 168 cases (c001-c168), and all of c169-c213, written after
the extractor and scored once before any change (docs/performance.md keeps that first score). Figures are reported
for ``dev`` and ``test`` apart, so a change that only memorises the dev cases shows.

Scoring runs the extractor as production does: turn by turn, each extraction seeing the conversation so far, the
ones under ``MIN_CONFIDENCE`` dropped, and the actions folded (``intake.manifests.fold_requirements``); the
result is compared with ``expect`` as sets, per type.
"""

import dataclasses
import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from intake.extractors import ConversationExtractor, Turn
from intake.manifests import MIN_CONFIDENCE, Requirement, fold_requirements

CASES_PATH = Path(__file__).with_name("cases.jsonl")
FIELDS = ("base_image", "language", "package", "architecture", "registry", "env", "port")
SPLITS = ("dev", "test")
TARGET_MICRO_F1 = 0.90
TARGET_EXACT = 0.75


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    split: str
    turns: tuple[Turn, ...]
    expect: dict[str, frozenset[str]]
    corrects: tuple[str, ...] = ()


@dataclasses.dataclass
class Counts:
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0

    def add(self, other: "Counts") -> None:
        self.true_positives += other.true_positives
        self.false_positives += other.false_positives
        self.false_negatives += other.false_negatives

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        expected = self.true_positives + self.false_negatives
        return self.true_positives / expected if expected else 1.0

    @property
    def f1(self) -> float:
        denominator = 2 * self.true_positives + self.false_positives + self.false_negatives
        return 2 * self.true_positives / denominator if denominator else 1.0


@dataclasses.dataclass
class CaseResult:
    case: Case
    actual: dict[str, frozenset[str]]
    findings: list[tuple[Decimal, bool]]  # each added value's confidence and whether it was expected

    @property
    def exact(self) -> bool:
        return all(self.actual[f] == self.case.expect[f] for f in FIELDS)

    @property
    def corrections_honoured(self) -> bool:
        return all(self.actual[f] == self.case.expect[f] for f in self.case.corrects)


@dataclasses.dataclass
class SplitScore:
    fields: dict[str, Counts]
    cases: int
    exact: int
    correction_cases: int
    corrections_failed: list[str]

    @property
    def micro(self) -> Counts:
        total = Counts()
        for counts in self.fields.values():
            total.add(counts)
        return total

    @property
    def exact_share(self) -> float:
        return self.exact / self.cases if self.cases else 1.0


@dataclasses.dataclass
class Evaluation:
    results: list[CaseResult]

    def score(self, split: str | None = None) -> SplitScore:
        results = [r for r in self.results if split is None or r.case.split == split]
        fields = {f: Counts() for f in FIELDS}
        for result in results:
            for f in FIELDS:
                expected, actual = result.case.expect[f], result.actual[f]
                fields[f].add(Counts(len(expected & actual), len(actual - expected), len(expected - actual)))
        with_corrections = [r for r in results if r.case.corrects]
        return SplitScore(
            fields=fields,
            cases=len(results),
            exact=sum(r.exact for r in results),
            correction_cases=len(with_corrections),
            corrections_failed=[r.case.id for r in with_corrections if not r.corrections_honoured],
        )

    def meets_targets(self) -> bool:
        overall = self.score()
        return (
            overall.micro.f1 >= TARGET_MICRO_F1
            and overall.exact_share >= TARGET_EXACT
            and not overall.corrections_failed
        )

    def calibration(self) -> dict[Decimal, tuple[int, int]]:
        """Per confidence level: (findings, of which expected)."""
        levels: dict[Decimal, list[int]] = defaultdict(lambda: [0, 0])
        for result in self.results:
            for confidence, right in result.findings:
                levels[confidence][0] += 1
                levels[confidence][1] += int(right)
        return {level: (n, right) for level, (n, right) in sorted(levels.items())}


def load_cases(path: Path = CASES_PATH) -> list[Case]:
    """The evaluation cases in ``path`` (JSON lines); raises ``ValueError`` naming a malformed line."""
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            turns = tuple(
                Turn("user", t) if isinstance(t, str) else Turn("assistant", t["assistant"]) for t in raw["turns"]
            )
            unknown = set(raw["expect"]) - set(FIELDS) or set(raw.get("corrects", ())) - set(FIELDS)
            if unknown or raw["split"] not in SPLITS or not turns:
                raise ValueError(f"unknown field(s) {sorted(unknown)} or split {raw['split']!r}, or no turns")
            expect = {f: frozenset(v.lower() for v in raw["expect"].get(f, ())) for f in FIELDS}
            cases.append(Case(raw["id"], raw["split"], turns, expect, tuple(raw.get("corrects", ()))))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path.name} line {number}: {error}") from error
    return cases


def run_case(extractor: ConversationExtractor, case: Case) -> CaseResult:
    """The case's requirements as ``extractor`` leaves them, turn by turn (see the module doc)."""
    requirements: list[Requirement] = []
    findings: list[tuple[Decimal, bool]] = []
    seen: list[Turn] = []
    for index, turn in enumerate(case.turns):
        seen.append(turn)
        if turn.role != "user":
            continue
        result = extractor.extract_conversation(list(seen))
        for found in result.requirements:
            if found.requirement_type not in FIELDS:
                continue
            # Calibration counts what a turn adds, against the end state; a type a later turn corrects is left out
            # (its first value was right when said).
            if found.action != "remove" and found.requirement_type not in case.corrects:
                findings.append((found.confidence, found.value.lower() in case.expect[found.requirement_type]))
            if found.confidence >= MIN_CONFIDENCE:
                requirements.append(Requirement(found.requirement_type, found.value, found.action, source=index))
    actual: dict[str, set[str]] = {f: set() for f in FIELDS}
    for requirement in fold_requirements(requirements):
        if requirement.requirement_type in actual:
            actual[requirement.requirement_type].add(requirement.value.lower())
    return CaseResult(case, {f: frozenset(v) for f, v in actual.items()}, findings)


def evaluate(extractor: ConversationExtractor, cases: list[Case]) -> Evaluation:
    return Evaluation([run_case(extractor, case) for case in cases])
