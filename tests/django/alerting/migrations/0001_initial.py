from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.CreateModel(
            name="Incident",
            fields=[
                ("id", models.AutoField(primary_key=True, serialize=False)),
                ("title", models.CharField(max_length=200)),
                ("severity", models.CharField(default="major", max_length=20)),
                ("recipient", models.EmailField(default="oncall@example.com", max_length=254)),
            ],
        ),
    ]
