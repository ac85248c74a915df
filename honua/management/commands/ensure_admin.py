import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

RESET_HINT = "to set a new one: python manage.py ensure_admin --reset-password (or: python manage.py changepassword {})"


class Command(BaseCommand):
    help = (
        "Make sure a superuser exists for the demo. A new one gets a random password, printed once; an existing "
        "one keeps its password (so running `make demo` again never locks you out) unless --reset-password or "
        "--password is given."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin", help="Username of the superuser (default: admin).")
        parser.add_argument(
            "--password",
            default=None,
            help="Password to set (also on an existing user); by default a new user gets a random one.",
        )
        parser.add_argument(
            "--reset-password",
            action="store_true",
            help="Give an existing user a new random password (printed once).",
        )

    def handle(self, *args, username, password, reset_password, **options):
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True}
        )
        user.is_staff = user.is_superuser = user.is_active = True
        if created or password or reset_password:
            password = password or secrets.token_urlsafe(12)
            user.set_password(password)
            user.save()
            verb = "created" if created else "password reset"
            self.stdout.write(self.style.SUCCESS(f"Admin user {verb}: username {username!r}, password {password!r}"))
            return
        user.save(update_fields=["is_staff", "is_superuser", "is_active"])
        self.stdout.write(
            self.style.SUCCESS(
                f"Admin user {username!r} exists; its password is unchanged (printed when it was created). "
                + RESET_HINT.format(username)
            )
        )
