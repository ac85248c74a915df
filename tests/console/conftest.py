"""Users in the console's roles."""

import pytest
from django.contrib.auth.models import Group, User

from console.roles import ADMINS, OPERATORS

PASSWORD = "console-test-password"


def make_user(username: str, *, group: str | None = None, staff: bool = True) -> User:
    user = User.objects.create_user(username, password=PASSWORD, is_staff=staff)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return User.objects.get(pk=user.pk)  # fresh: no permission cache


@pytest.fixture
def operator(db) -> User:
    return make_user("olive-operator", group=OPERATORS)


@pytest.fixture
def admin_user_in_group(db) -> User:
    return make_user("ada-admin", group=ADMINS)


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator)
    return client
