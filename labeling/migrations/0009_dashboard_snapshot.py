# The dashboard's snapshot of the quality figures, and the index of its time windows.
# Written to follow 0007 on its branch: renumber / re-point at merge (0008_project_counts).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0008_project_counts"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="image",
            index=models.Index(fields=["project", "reviewed_at"], name="image_project_reviewed_idx"),
        ),
        migrations.CreateModel(
            name="DashboardSnapshot",
            fields=[
                (
                    "project",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="labeling.project",
                    ),
                ),
                ("figures", models.JSONField(blank=True, null=True)),
                ("fingerprint", models.JSONField(blank=True, null=True)),
                ("computed_at", models.DateTimeField(blank=True, null=True)),
                ("requested_at", models.DateTimeField(blank=True, null=True)),
            ],
        ),
    ]
