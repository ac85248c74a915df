"""The HN error codes: every code the SQL raises is in docs/sql-api.md's table and in honua.errors, and back."""

import re

from honua import errors
from tests.conftest import PROJECT_ROOT

DOC = (PROJECT_ROOT / "docs" / "sql-api.md").read_text()


def _documented_codes() -> set[str]:
    table = DOC.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(HN\d{3})` \|", table, re.MULTILINE))


def test_the_doc_table_and_the_exception_mapping_list_the_same_codes():
    """Each documented HN code maps to its own exception class, and each mapped code is documented."""
    mapped = {code for code in errors.BY_SQLSTATE if code.startswith("HN")}
    assert _documented_codes() == mapped
    assert len({errors.BY_SQLSTATE[code] for code in mapped}) == len(mapped)


def test_every_hn_code_raised_in_sql_is_documented():
    """No SQL file or model trigger raises an HN code missing from the table."""
    raised = set()
    for path in PROJECT_ROOT.glob("*/sql/*.sql"):
        raised |= set(re.findall(r"ERRCODE\s*=\s*'(HN\d{3})'", path.read_text()))
    for path in PROJECT_ROOT.glob("*/models.py"):
        raised |= set(re.findall(r"ERRCODE\s*=\s*'(HN\d{3})'", path.read_text()))
    assert raised, "the build-output functions raise HN codes"
    assert raised <= _documented_codes()
