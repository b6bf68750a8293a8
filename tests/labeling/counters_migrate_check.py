"""Run by tests/labeling/test_project_counts.py in a subprocess on a fresh database, SQLite (the
embedded default: the only run of its triggers, CI's own database is PostgreSQL) or an empty
PostgreSQL one: migrate, write in every way, compare the counts rows with real counts after each
step, migrate back and forth (the reverse SQL, the backfill), plant drift for the command, and alter
a column the way a migration does (SQLite rebuilds the table: its triggers are off during `migrate`
and back after it). Prints one JSON line: what the test asserts."""

from __future__ import annotations

import io
import json
import random
import sys
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
django.setup()

from django.core.management import CommandError, call_command  # noqa: E402
from django.core.management.sql import emit_post_migrate_signal, emit_pre_migrate_signal  # noqa: E402
from django.db import connection, models, transaction  # noqa: E402
from django.db.models import F  # noqa: E402

from labeling.db_counters import COUNTERS, trigger_names  # noqa: E402
from labeling.models import Annotation, Image, LabelClass, Project, ProjectCounts  # noqa: E402
from labeling.services import review  # noqa: E402
from labeling.services.counters import image_counts_recompute, project_counts_actual  # noqa: E402
from labeling.services.projects import project_create  # noqa: E402
from tests.conftest import make_user  # noqa: E402
from tests.labeling.review_helpers import add_annotation, add_images  # noqa: E402

mismatches: list = []
steps = 0


def check(label: str) -> None:
    global steps
    steps += 1
    for project in Project.objects.all():
        row = ProjectCounts.objects.filter(project=project).first()
        stored = {f: getattr(row, f) for f in COUNTERS} if row else None
        actual = project_counts_actual(project_id=project.pk)
        if stored != actual:
            mismatches.append({"step": label, "project": project.pk, "stored": stored, "actual": actual})
        for drift in image_counts_recompute(project_id=project.pk):  # each image's own counts
            mismatches.append(
                {"step": label, "project": project.pk, "image": drift.field, "stored": drift.stored}
            )


def command(*args) -> int:
    try:
        call_command("project_counters", *args, stdout=io.StringIO())
    except CommandError as exc:
        return exc.returncode
    return 0


def db_triggers() -> set[str]:
    """The counter triggers the database has now."""
    sql = {
        "sqlite": "SELECT name FROM sqlite_master WHERE type = 'trigger'",
        "postgresql": "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal",
    }[connection.vendor]
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return {name for (name,) in cursor.fetchall()} & set(trigger_names(connection.vendor))


call_command("migrate", verbosity=0)
triggers = db_triggers()

manager, annotator = make_user("manny"), make_user("anna")
p1 = project_create(user=manager, name="One", classes=[{"name": "cat"}, {"name": "dog"}])
p2 = Project.objects.create(name="Two")
LabelClass.objects.create(project=p2, name="bird")
check("projects")
images = add_images(p1, 6, status=Image.Status.NEW)
others = add_images(p2, 3, start=100)
check("bulk images")
for image in images[:4]:
    add_annotation(image)
    add_annotation(image, state=Annotation.State.REJECTED)
Annotation.objects.bulk_create(
    Annotation(
        image=im, label_class=p2.classes.first(), x=0, y=0, w=1, h=1, source="import", state="accepted"
    )
    for im in others
)
check("annotations")
review.image_lease_next(project=p1, user=manager)
review.image_submit(image=images[0], user=manager)
review.image_lease_next(project=p1, user=manager)
review.image_skip(image=images[1], user=manager)
check("submit and skip")
first = Annotation.objects.filter(image=images[2]).first()
review.annotation_update(annotation=first, user=manager, version=1, box=(0, 0, 3, 3))
review.annotation_update(
    annotation=Annotation.objects.get(pk=first.pk), user=manager, version=2, state="accepted"
)
Annotation.objects.filter(image=images[3]).update(state="accepted", version=F("version") + 1)
Annotation.objects.filter(image=images[3]).update(source="human")
check("updates")
Annotation.objects.filter(image=images[2]).update(image=others[0])
Image.objects.filter(pk=images[3].pk).update(project=p2)
check("moves")
images[4].delete()
Image.objects.filter(pk=others[1].pk).delete()
with transaction.atomic(), connection.cursor() as cursor:  # the image before its annotations
    cursor.execute("DELETE FROM labeling_image WHERE id = %s", [others[2].pk])
    cursor.execute("DELETE FROM labeling_annotation WHERE image_id = %s", [others[2].pk])
check("deletes")
rng = random.Random(7)
for i in range(20):
    project = rng.choice([p1, p2])
    add_images(project, 2, status=rng.choice(Image.Status.values), start=1000 + i * 10)
    ids = list(Annotation.objects.values_list("pk", flat=True))
    Annotation.objects.filter(pk__in=rng.sample(ids, min(3, len(ids)))).update(
        state=rng.choice(Annotation.State.values), original_box=rng.choice([None, [0, 0, 1, 1]])
    )
    for image in project.images.order_by("?")[:2]:
        add_annotation(
            image, label_class=project.classes.first(), source=rng.choice(Annotation.Source.values)
        )
    Image.objects.filter(pk__in=project.images.order_by("?").values("pk")[:1]).delete()
    check(f"random {i}")
doomed = project_create(user=manager, name="Doomed", classes=[{"name": "x"}])
add_images(doomed, 2, start=5000)  # (a class with annotations is protected: none here)
doomed.delete()
check("project delete")

# Back to 0007 (the reverse SQL drops the triggers and the table), writes, forward: the backfill.
call_command("migrate", "labeling", "0007", verbosity=0)
reverse_left = db_triggers()
with connection.cursor() as cursor:  # the model has 0012's columns: by hand on the old schema
    cursor.execute("UPDATE labeling_image SET status = 'done' WHERE project_id = %s", [p1.pk])
Annotation.objects.filter(image__project=p2).update(state="rejected")
Annotation.objects.filter(image__project=p1).update(state="proposed")
call_command("migrate", verbosity=0)
check("backfill")
row = ProjectCounts.objects.get(project=p1)
backfilled = {f: getattr(row, f) for f in COUNTERS}
expected = project_counts_actual(project_id=p1.pk)

ProjectCounts.objects.filter(project=p2).update(images_new=F("images_new") + 3)
Image.objects.filter(pk=p1.images.order_by("id").values("pk")[:1]).update(
    proposal_count=F("proposal_count") + 2
)
drift_exit, fix_exit, after_fix_exit = command(), command("--fix"), command()

# A migration that alters a column on SQLite rebuilds the table (copy, DROP, RENAME): what
# `migrate` does around it, with a write between the rebuild and the signal's recompute.
old = Image._meta.get_field("original_name")
new = models.CharField(max_length=300)
new.set_attributes_from_name("original_name")
new.model = Image
emit_pre_migrate_signal(0, False, "default")
during_migrate = db_triggers()
with connection.schema_editor() as editor:
    editor.alter_field(Image, old, new)
add_images(p1, 1, start=9400)  # uncounted: no trigger now
emit_post_migrate_signal(0, False, "default")
add_images(p1, 2, start=9500)
check("after the rebuild")

print(
    json.dumps(
        {
            "vendor": connection.vendor,
            "triggers": len(triggers),
            "steps": steps,
            "mismatches": mismatches,
            "reverse_left": sorted(reverse_left),
            "backfilled": backfilled,
            "expected_after_backfill": expected,
            "drift_exit": drift_exit,
            "fix_exit": fix_exit,
            "after_fix_exit": after_fix_exit,
            "triggers_during_migrate": len(during_migrate),
            "triggers_at_the_end": len(db_triggers()),
        }
    )
)
