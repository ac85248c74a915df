"""Project-wide management commands: the demo admin user and the demo data loader."""

from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command


@pytest.mark.django_db
def test_ensure_admin_prints_credentials_that_log_in():
    """`ensure_admin` creates a superuser and prints a password that authenticates."""
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    password = out.getvalue().split("password ")[1].strip().strip("'")
    user = authenticate(username="admin", password=password)
    assert user is not None and user.is_superuser and user.is_staff


@pytest.mark.django_db
def test_ensure_admin_twice_resets_the_password():
    """Running `ensure_admin` again keeps one user and gives it the new password."""
    call_command("ensure_admin", password="first-Pass-123", stdout=StringIO())
    call_command("ensure_admin", password="second-Pass-456", stdout=StringIO())
    assert get_user_model().objects.filter(username="admin").count() == 1
    assert authenticate(username="admin", password="second-Pass-456") is not None
