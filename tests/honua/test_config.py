"""Configuration from the environment: clear one-line errors, and a production path that passes check --deploy."""

import pytest

from tests.conftest import run_manage

PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "honua.settings.production",
    "SECRET_KEY": "k3J9x!Vq2#rT8zLw5@mN1pYb6&cF0hDsGuEoAiQ4jXeR7tWvKyZl",
    "ALLOWED_HOSTS": "honua.example.com",
    "HONUA_ENCRYPTION_KEYS": "1:GlFQRHPzFPxSTyClyVrZ4rM/vDxclxgp9J4+bACqYGY=",
    "HONUA_BLIND_INDEX_KEY": "2JSkfg8BEP3SSDcEDq0LHdJCnFxxAchx/xx2z37wc+A=",
}


def _one_line_error(result) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_malformed_database_url_is_one_line_without_the_password():
    """A malformed DATABASE_URL is reported on one line that does not echo its password."""
    result = run_manage("check", env={"DATABASE_URL": "postgres://user:hunter2@host:notaport/db"})
    line = _one_line_error(result)
    assert "DATABASE_URL is malformed" in line
    assert "hunter2" not in result.stderr + result.stdout


def test_database_url_for_another_database_is_refused():
    """A DATABASE_URL for a server that is not PostgreSQL gets a clear error."""
    line = _one_line_error(run_manage("check", env={"DATABASE_URL": "mysql://root@127.0.0.1/honua"}))
    assert "must point at PostgreSQL" in line


def test_unreachable_database_is_one_line():
    """An unreachable server is reported on one line naming the problem, not a traceback."""
    result = run_manage("showmigrations", env={"DATABASE_URL": "postgres://postgres:secretpw@127.0.0.1:1/honua"})
    line = _one_line_error(result)
    assert line.startswith("honua: cannot connect to the database")
    assert "127.0.0.1" in line
    assert "secretpw" not in result.stderr


def test_production_requires_secret_key():
    """Production settings without SECRET_KEY stop with a one-line error naming it."""
    env = dict(PRODUCTION)
    del env["SECRET_KEY"]
    line = _one_line_error(run_manage("check", env=env))
    assert "SECRET_KEY must be set" in line


@pytest.mark.parametrize("variable", ["HONUA_ENCRYPTION_KEYS", "HONUA_BLIND_INDEX_KEY"])
def test_production_refuses_development_keys(variable):
    """Production settings refuse the development encryption keys."""
    from honua import config

    env = dict(PRODUCTION)
    env[variable] = (
        config.DEVELOPMENT_ENCRYPTION_KEYS
        if variable == "HONUA_ENCRYPTION_KEYS"
        else config.DEVELOPMENT_BLIND_INDEX_KEY
    )
    line = _one_line_error(run_manage("check", env=env))
    assert "development encryption keys" in line


def test_production_passes_check_deploy(db_url):
    """With its variables set, the production settings pass `check --deploy` with no warnings."""
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env={**PRODUCTION, "DATABASE_URL": db_url})
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues" in result.stdout


def test_development_needs_no_variables():
    """Development settings work with no environment variables at all."""
    result = run_manage("check")
    assert result.returncode == 0, result.stderr


def test_malformed_replica_url_is_one_line_without_the_password():
    """A malformed DATABASE_REPLICA_URL is reported on one line naming that variable, without its password."""
    result = run_manage("check", env={"DATABASE_REPLICA_URL": "postgres://user:hunter2@host:notaport/db"})
    line = _one_line_error(result)
    assert "DATABASE_REPLICA_URL is malformed" in line
    assert "hunter2" not in result.stderr + result.stdout


def test_production_with_a_replica_passes_check_deploy(db_url):
    """The production settings accept a replica (pooled like the primary) and still pass `check --deploy`."""
    env = {**PRODUCTION, "DATABASE_URL": db_url, "DATABASE_REPLICA_URL": db_url}
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", "--database", "replica", env=env)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues" in result.stdout
