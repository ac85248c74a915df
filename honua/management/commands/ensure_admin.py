import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create (or reset) a superuser for the demo and print its credentials."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin", help="Username of the superuser (default: admin).")
        parser.add_argument(
            "--password", default=None, help="Password to set; by default a new random one is generated."
        )

    def handle(self, *args, username, password, **options):
        password = password or secrets.token_urlsafe(12)
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True}
        )
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()
        verb = "created" if created else "reset"
        self.stdout.write(self.style.SUCCESS(f"Admin user {verb}: username {username!r}, password {password!r}"))
