"""The ``operators`` and ``admins`` groups (console/roles.py says what each may do)."""

from django.db import migrations


def create_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions
    from django.contrib.contenttypes.management import create_contenttypes

    from console.roles import sync_roles

    # Permissions are normally created after the whole migrate run (post_migrate); create them now so the groups
    # can be given them in this migration.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_contenttypes(app_config, verbosity=0, apps=apps)
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    sync_roles(group_model=apps.get_model("auth", "Group"), permission_model=apps.get_model("auth", "Permission"))


def delete_roles(apps, schema_editor):
    from console.roles import ADMINS, OPERATORS

    apps.get_model("auth", "Group").objects.filter(name__in=[OPERATORS, ADMINS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("honua", "0001_initial"),
        ("licensing", "0001_initial"),
        ("builds", "0002_quota_usage"),
        ("intake", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_roles, delete_roles)]
