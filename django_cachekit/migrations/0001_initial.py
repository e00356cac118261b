from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []  # type: ignore[var-annotated]

    operations = [
        migrations.CreateModel(
            name="PendingInvalidation",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("tags", models.TextField()),
                ("created", models.DateTimeField()),
            ],
            options={"db_table": "django_cachekit_pending", "verbose_name": "pending invalidation"},
        ),
    ]
