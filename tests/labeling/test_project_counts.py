"""The project counters (labeling/db_counters.py): after every kind of write the counts row equals
a recomputation with real COUNTs; the command reports planted drift and fixes it; the pages and the
API read the row, in the same number of queries whatever the number of projects; and the SQLite
triggers of the embedded default, run in a subprocess (CI runs on PostgreSQL)."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from labeling.db_counters import ANNOTATION_COUNTERS, CLASS_COUNTERS, COUNTERS, IMAGE_COUNTERS
from labeling.models import Annotation, Image, LabelClass, Project, ProjectCounts
from labeling.selectors import dashboard
from labeling.selectors.images import image_status_counts
from labeling.services import prelabel, review
from labeling.services.counters import (
    ANNOTATION_FILTERS,
    image_counts_recompute,
    project_counts_actual,
    project_counts_recompute,
)
from labeling.services.images import image_delete
from labeling.services.projects import membership_set, project_create
from tests.conftest import plain_images
from tests.labeling.conftest import ingest_photos, run_job
from tests.labeling.import_helpers import do_import
from tests.labeling.review_helpers import add_annotation, add_images

pytestmark = pytest.mark.django_db

MODEL, HUMAN, IMPORT = Annotation.Source.values
PROPOSED, ACCEPTED, REJECTED = Annotation.State.values
ROOT = Path(__file__).resolve().parents[2]


def stored(project) -> dict[str, int]:
    row = ProjectCounts.objects.get(project=project)
    return {field: getattr(row, field) for field in COUNTERS}


def assert_exact(*projects) -> None:
    """The counts row, and each image's own counts (annotation_count, proposal_count), are the
    real counts."""
    for project in projects:
        assert stored(project) == project_counts_actual(project_id=project.pk), project
        assert image_counts_recompute(project_id=project.pk) == [], project


def nonzero(project) -> dict[str, int]:
    return {field: n for field, n in stored(project).items() if n}


def test_the_triggers_the_recompute_and_the_model_count_the_same_counters():
    fields = [f.name for f in ProjectCounts._meta.get_fields() if f.name != "project"]
    assert sorted(fields) == sorted(COUNTERS)
    assert set(ANNOTATION_FILTERS) == set(ANNOTATION_COUNTERS)
    assert set(IMAGE_COUNTERS) == {f"images_{s}" for s in Image.Status.values}
    assert set(CLASS_COUNTERS) == {"classes"}


# Each kind of write ------------------------------------------------------------------------------


def test_every_new_project_has_its_row_even_made_directly(manager):
    bare = Project.objects.create(name="Bare")
    assert nonzero(bare) == {}
    made = project_create(user=manager, name="Made", classes=[{"name": "a"}, {"name": "b"}])
    assert nonzero(made) == {"classes": 2}
    assert_exact(bare, made)


def test_ingest_and_image_delete(project):
    first, *_ = plain_images(project, 3)
    assert nonzero(project) == {"images_new": 3, "classes": 2}
    add_annotation(first)
    add_annotation(first, source=HUMAN, state=ACCEPTED)
    assert nonzero(project)["annotations_proposed"] == 1 and nonzero(project)["model_proposed"] == 1
    image_delete(image=first)  # its annotations go first (a cascade), then the image
    assert nonzero(project) == {"images_new": 2, "classes": 2}
    assert_exact(project)


def test_lease_submit_and_skip_through_the_review_services(project, annotator):
    a, b, _ = add_images(project, 3, status=Image.Status.PRELABELED)
    leased = review.image_lease_next(project=project, user=annotator)
    assert leased == a.pk
    assert nonzero(project) == {"images_prelabeled": 3, "classes": 2}  # a lease changes no count
    review.image_submit(image=a, user=annotator)
    review.image_lease_next(project=project, user=annotator)
    review.image_skip(image=b, user=annotator)
    assert nonzero(project) == {"images_prelabeled": 1, "images_done": 1, "images_skipped": 1, "classes": 2}
    assert_exact(project)


def test_annotation_create_update_delete_and_bulk_states(project, annotator):
    (image,) = add_images(project, 1)
    cat = project.classes.first()
    proposals = [add_annotation(image, score=s) for s in (0.9, 0.7, 0.5, 0.3)]
    drawn = review.annotation_create(image=image, user=annotator, class_id=cat.pk, box=(1, 1, 5, 5))
    assert nonzero(project) == {
        "images_prelabeled": 1, "classes": 2, "annotations_proposed": 4, "annotations_accepted": 1,
        "model_proposed": 4,
    }  # fmt: skip
    review.annotation_update(
        annotation=proposals[3], user=annotator, version=1, state=REJECTED
    )  # state change
    review.annotation_update(annotation=proposals[2], user=annotator, version=1, box=(0, 0, 9, 9))  # edited
    again = Annotation.objects.get(pk=proposals[2].pk)
    review.annotation_update(annotation=again, user=annotator, version=2, box=(0, 0, 8, 8))  # edited again
    review.annotations_accept_above(image=image, user=annotator, min_score=0.6)  # two accepted
    assert nonzero(project) == {
        "images_prelabeled": 1, "classes": 2, "annotations_proposed": 1, "annotations_accepted": 3,
        "annotations_rejected": 1, "model_proposed": 1, "model_accepted": 2, "model_rejected": 1,
        "model_edited": 1,
    }  # fmt: skip
    updates = [review.StateUpdate(id=a.pk, version=2, state=PROPOSED) for a in proposals[:2]]
    review.annotations_set_states(image=image, user=annotator, updates=updates)
    review.annotation_delete(annotation=Annotation.objects.get(pk=drawn["id"]), user=annotator, version=1)
    assert nonzero(project)["annotations_proposed"] == 3 and "annotations_accepted" not in nonzero(project)
    assert_exact(project)


def test_an_import_adds_its_classes_images_and_annotations(project, manager):
    plain_images(project, 1)
    data = {
        "images": [{"id": 1, "file_name": "plain-0.png", "width": 64, "height": 48}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "Toaster"}],
        "annotations": [
            {"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]},
            {"image_id": 1, "category_id": 2, "bbox": [1, 1, 5, 5]},
        ],
    }
    report = do_import(project, data, format="coco", user=manager, create_classes=True)
    assert report.ok
    assert nonzero(project) == {"images_new": 1, "classes": 3, "annotations_accepted": 2}
    assert_exact(project)


def test_a_failed_import_leaves_the_counts_as_they_were(project, manager):
    plain_images(project, 1)
    before = stored(project)
    data = {"images": [{"id": 1, "file_name": "plain-0.png"}], "categories": [{"id": 1, "name": "Nope"}]}
    data["annotations"] = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]}]
    assert not do_import(project, data, format="coco", user=manager).ok
    assert stored(project) == before


@pytest.mark.usefixtures("tiny_models")
def test_prelabel_batches_replace_the_untouched_proposals(project, task_calls, annotator):
    project.segment = False
    project.save()
    photo, _ = ingest_photos(project, [("coffee", ""), ("rocket", "")])
    options = prelabel.JobOptions()
    run_job(prelabel.prelabel_job_start(project=project, user=None, options=options), task_calls)
    made = list(photo.annotations.order_by("id"))
    assert len(made) >= 3
    assert stored(project)["images_prelabeled"] == 2
    assert stored(project)["model_proposed"] == Annotation.objects.filter(image__project=project).count()
    Annotation.objects.filter(pk=made[0].pk).update(state=ACCEPTED)
    Annotation.objects.filter(pk=made[1].pk).update(original_box=[0, 0, 1, 1], x=0, y=0, w=2, h=2)
    second = prelabel.JobOptions(scope="not_done")
    run_job(prelabel.prelabel_job_start(project=project, user=None, options=second), task_calls)
    assert stored(project)["model_accepted"] == 1 and stored(project)["model_edited"] == 1
    assert_exact(project)


def test_bulk_create_queryset_update_and_raw_deletes(project, manager):
    other = project_create(user=manager, name="Other", classes=[{"name": "dog"}])
    images = add_images(project, 5, status=Image.Status.NEW)
    cat = project.classes.first()
    Annotation.objects.bulk_create(
        Annotation(image=im, label_class=cat, x=0, y=0, w=1, h=1, source=src, state=st)
        for im in images
        for src, st in ((MODEL, PROPOSED), (MODEL, REJECTED), (HUMAN, ACCEPTED), (IMPORT, ACCEPTED))
    )
    assert stored(project)["annotations_accepted"] == 10 and stored(project)["model_proposed"] == 5
    Image.objects.filter(pk__in=[im.pk for im in images[:2]]).update(status=Image.Status.DONE)
    Annotation.objects.filter(image__project=project, source=MODEL).update(state=ACCEPTED)
    Annotation.objects.filter(image=images[0], source=HUMAN).update(source=MODEL)  # source changes
    Annotation.objects.filter(image=images[1]).update(version=F("version") + 1)  # nothing counted
    Annotation.objects.filter(image=images[2]).delete()
    assert_exact(project, other)
    # Rows moved to another project (the admin can): their counts move with them.
    (target,) = add_images(other, 1, start=100)
    Annotation.objects.filter(image=images[3]).update(image=target)
    Image.objects.filter(pk=images[4].pk).update(project=other)
    LabelClass.objects.create(project=project, name="spare")
    LabelClass.objects.filter(project=project, name="spare").update(project=other)
    assert stored(other)["classes"] == 2
    assert stored(other)["annotations_accepted"] == 8
    assert_exact(project, other)
    with connection.cursor() as cursor:  # SQL the ORM never saw
        cursor.execute("DELETE FROM labeling_annotation WHERE image_id = %s", [target.pk])
    assert_exact(project, other)


def counts_row_updates() -> int:
    """Updates of counts rows in this transaction so far (PostgreSQL's per-transaction statistics)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = 'labeling_projectcounts'"
        )
        return cursor.fetchone()[0]


def test_one_statement_is_one_counter_update_and_uncounted_changes_touch_no_row(project):
    (image,) = add_images(project, 1)
    cat = project.classes.first()
    before = counts_row_updates()
    with connection.cursor() as cursor:  # 10,000 rows in one statement
        cursor.execute(
            "INSERT INTO labeling_annotation (image_id, label_class_id, x, y, w, h, phrase, source, state,"
            " version, created_at, updated_at) SELECT %s, %s, 0, 0, 1, 1, '', 'model', "
            "CASE WHEN g %% 2 = 0 THEN 'proposed' ELSE 'rejected' END, 1, now(), now() "
            "FROM generate_series(1, 10000) AS g",
            [image.pk, cat.pk],
        )
    assert counts_row_updates() == before + 1
    assert stored(project)["model_proposed"] == 5000 and stored(project)["annotations_rejected"] == 5000
    Annotation.objects.filter(image=image).update(version=F("version") + 1, phrase="moved")
    Image.objects.filter(pk=image.pk).update(version=F("version") + 1)
    assert counts_row_updates() == before + 1  # nothing counted changed: no counts row locked
    Annotation.objects.filter(image=image, state=REJECTED).update(state=ACCEPTED)
    assert counts_row_updates() == before + 2
    assert_exact(project)


def test_a_project_delete_takes_its_row_and_leaves_the_others_alone(project, manager):
    other = project_create(user=manager, name="Other", classes=[{"name": "dog"}])
    for image in add_images(other, 3, start=100):
        add_annotation(image, label_class=other.classes.first())
    add_images(project, 3)  # (annotations protect their classes: a project is deleted without any)
    before = stored(other)
    project.delete()  # cascades: images, classes, members, the counts row (in Django's order)
    assert not ProjectCounts.objects.filter(project_id=project.pk).exists()
    assert stored(other) == before
    assert_exact(other)


def test_an_image_deleted_before_its_annotations_takes_them_out_too(project):
    """Foreign keys are checked at commit: an image may go before its annotations in a transaction
    (SQL by hand); the image's trigger takes them out, the annotations' own then find no image."""
    image, kept = add_images(project, 2)
    add_annotation(image)
    add_annotation(kept, state=ACCEPTED)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM labeling_image WHERE id = %s", [image.pk])
        cursor.execute("DELETE FROM labeling_annotation WHERE image_id = %s", [image.pk])
    assert nonzero(project) == {
        "images_prelabeled": 1, "classes": 2, "annotations_accepted": 1, "model_accepted": 1,
    }  # fmt: skip
    assert_exact(project)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_random_sequence_of_writes_keeps_the_counts_exact(seed, manager):
    rng = random.Random(seed)
    projects = [project_create(user=manager, name=f"P{i}", classes=[{"name": "a"}]) for i in range(2)]
    next_image = iter(range(10**6))

    def some_annotations():
        return Annotation.objects.filter(
            pk__in=rng.sample(list(Annotation.objects.values_list("pk", flat=True)), 3)
        )

    def some_images():
        return Image.objects.filter(pk__in=rng.sample(list(Image.objects.values_list("pk", flat=True)), 2))

    operations = {
        "add images": lambda p: add_images(p, rng.randint(1, 4), status=rng.choice(Image.Status.values),
                                           start=next(next_image) * 10),
        "add annotations": lambda p: Annotation.objects.bulk_create(
            Annotation(image=im, label_class=p.classes.first(), x=0, y=0, w=1, h=1,
                       source=rng.choice(Annotation.Source.values), state=rng.choice(Annotation.State.values),
                       original_box=rng.choice([None, [0, 0, 1, 1]]))
            for im in p.images.all()[: rng.randint(1, 5)]
        ),
        "set states": lambda p: some_annotations().update(state=rng.choice(Annotation.State.values)),
        "set sources": lambda p: some_annotations().update(source=rng.choice(Annotation.Source.values)),
        "edit": lambda p: some_annotations().update(original_box=rng.choice([None, [1, 1, 2, 2]])),
        "set statuses": lambda p: some_images().update(status=rng.choice(Image.Status.values)),
        "delete annotations": lambda p: some_annotations().delete(),
        "delete images": lambda p: some_images().delete(),
        "add a class": lambda p: LabelClass.objects.create(project=p, name=f"c{next(next_image)}"),
    }  # fmt: skip
    for project in projects:
        operations["add images"](project)
        operations["add annotations"](project)
    for _ in range(40):
        name = rng.choice(list(operations))
        if (
            name in ("set states", "set sources", "edit", "delete annotations")
            and Annotation.objects.count() < 3
        ):
            name = "add annotations"
        if name in ("set statuses", "delete images") and Image.objects.count() < 2:
            name = "add images"
        operations[name](rng.choice(projects))
        for project in projects:
            assert stored(project) == project_counts_actual(project_id=project.pk), (seed, name)


# The command ------------------------------------------------------------------------------------


def run_command(*args) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("project_counters", *args, stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue() + str(exc)
    return 0, out.getvalue()


def test_the_command_reports_planted_drift_and_fixes_it(project, manager):
    other = project_create(user=manager, name="Other", classes=[])
    add_images(project, 3)
    assert run_command() == (0, "The project counters are exact.\n")
    ProjectCounts.objects.filter(project=project).update(
        images_prelabeled=F("images_prelabeled") + 5, classes=0
    )

    code, out = run_command()
    assert code == 1
    assert f"project {project.pk}: images_prelabeled stored 8, actual 3" in out
    assert f"project {project.pk}: classes stored 0, actual 2" in out
    assert f"project {other.pk}" not in out
    assert run_command("--project", str(other.pk))[0] == 0  # only the project asked for

    code, out = run_command("--fix")
    assert code == 0 and "Fixed 2 counter(s) in 1 project(s)." in out
    assert stored(project)["images_prelabeled"] == 3 and stored(project)["classes"] == 2
    assert run_command()[0] == 0


def test_the_command_puts_back_a_missing_row_and_refuses_unknown_projects(project):
    add_images(project, 2)
    ProjectCounts.objects.filter(project=project).delete()
    assert image_status_counts(project=project)["all"] == 0  # read as zeros, not an error
    code, out = run_command("--project", str(project.pk))
    assert code == 1 and f"project {project.pk}: images_prelabeled stored missing, actual 2" in out
    assert run_command("--project", str(project.pk), "--fix")[0] == 0
    assert stored(project)["images_prelabeled"] == 2
    add_images(project, 1, start=50)  # the triggers count into the row put back
    assert_exact(project)
    code, out = run_command("--project", "999999")
    assert code == 1 and "No project with id 999999." in out


def test_each_image_counts_its_annotations_and_open_proposals(project, annotator):
    busy, quiet = add_images(project, 2)
    kept = [add_annotation(busy) for _ in range(3)] + [add_annotation(busy, state=ACCEPTED)]
    counts = lambda image: Image.objects.values_list("annotation_count", "proposal_count").get(pk=image.pk)  # noqa: E731
    assert (counts(busy), counts(quiet)) == ((4, 3), (0, 0))
    Annotation.objects.filter(pk=kept[0].pk).update(state=REJECTED)  # a state: only proposals move
    assert counts(busy) == (4, 2)
    Annotation.objects.filter(pk__in=[kept[1].pk, kept[3].pk]).update(image=quiet)  # moved
    assert (counts(busy), counts(quiet)) == ((2, 1), (2, 1))
    Annotation.objects.filter(image=quiet).update(source=HUMAN)  # nothing counted changes
    assert counts(quiet) == (2, 1)
    # A stale instance saved again does not write its old counts back (save() leaves them out).
    stale = Image.objects.get(pk=busy.pk)
    add_annotation(busy)
    stale.original_name = "renamed.png"
    stale.save()
    assert counts(busy) == (3, 2)
    Annotation.objects.filter(image=busy).delete()
    assert counts(busy) == (0, 0)
    assert_exact(project)


def test_the_command_reports_and_fixes_an_images_drifted_counts(project):
    image, other = add_images(project, 2)
    add_annotation(image)
    Image.objects.filter(pk=image.pk).update(annotation_count=9)
    Image.objects.filter(pk=other.pk).update(proposal_count=-1)
    code, out = run_command()
    assert code == 1
    assert f"project {project.pk}: image {image.pk} annotation_count stored 9, actual 1" in out
    assert f"project {project.pk}: image {other.pk} proposal_count stored -1, actual 0" in out
    assert f"image {image.pk} proposal_count" not in out  # only what drifted
    code, out = run_command("--fix")
    assert code == 0 and "Fixed 2 counter(s) in 1 project(s)." in out
    assert run_command() == (0, "The project counters are exact.\n")
    assert_exact(project)


def test_the_recompute_service_answers_the_drifted_fields(project):
    add_images(project, 1)
    ProjectCounts.objects.filter(project=project).update(model_edited=7)
    (drift,) = project_counts_recompute(project_ids=[project.pk])
    assert (drift.project_id, drift.field, drift.stored, drift.actual) == (project.pk, "model_edited", 7, 0)
    assert stored(project)["model_edited"] == 7  # reported, not fixed
    assert project_counts_recompute(project_ids=[project.pk], fix=True) == [drift]
    assert project_counts_recompute() == []


# The readers -------------------------------------------------------------------------------------


def counted_tables(captured) -> set[str]:
    """The large tables a query COUNTs over."""
    return {
        table
        for q in captured.captured_queries
        for table in ("labeling_image", "labeling_annotation")
        if "COUNT(" in q["sql"].upper() and f'"{table}"' in q["sql"]
    }


def test_the_project_page_and_the_dashboard_read_the_row(project, client_for, manager, annotator):
    for image in add_images(project, 4):
        add_annotation(image)
    Annotation.objects.filter(pk=Annotation.objects.first().pk).update(
        state=ACCEPTED, original_box=[0, 0, 1, 1]
    )
    with CaptureQueriesContext(connection) as captured:
        counts = image_status_counts(project=project)
        proposals = dashboard.proposal_counts(project=project)
    assert counts == {"new": 0, "prelabeled": 4, "done": 0, "skipped": 0, "all": 4}
    assert proposals == {"total": 4, "accepted": 1, "rejected": 0, "proposed": 3, "edited": 1}
    assert len(captured) == 2 and all(
        '"labeling_projectcounts"' in q["sql"] for q in captured.captured_queries
    )

    client = client_for(manager)
    page = client.get(reverse("project-detail", args=[project.pk])).content.decode()
    assert 'All <span class="count">4</span>' in page
    page = client.get(reverse("dashboard-project", args=[project.pk])).content.decode()
    assert "<dt>Edited</dt><dd>1</dd>" in page and "<dt>Still proposed</dt><dd>3</dd>" in page


def many_projects(manager, annotator, n: int) -> None:
    for i in range(n):
        p = project_create(user=manager, name=f"Many {i}", classes=[{"name": "a"}])
        membership_set(project=p, user=annotator, role="annotator")
        add_images(p, 2, start=i * 10)


@pytest.mark.parametrize("who", ["manager", "annotator"])
def test_the_project_list_and_the_api_list_make_the_same_queries_for_1_and_20_projects(
    who, manager, annotator, client_for, api_for
):
    user = {"manager": manager, "annotator": annotator}[who]
    queries = {}
    for total in (1, 20):
        many_projects(manager, annotator, total - Project.objects.count())
        client = client_for(user)
        with CaptureQueriesContext(connection) as page:
            response = client.get(reverse("project-list"))
        assert response.status_code == 200
        assert response.content.decode().count("2 images") == total
        api = api_for(who)
        with CaptureQueriesContext(connection) as listed:
            rows = api.get("/api/v1/projects/").json()["results"]
        assert (
            len(rows) == total
            and {r["image_count"] for r in rows} == {2}
            and {r["class_count"] for r in rows} == {1}
        )
        assert not counted_tables(page) and not counted_tables(listed)
        queries[total] = (len(page), len(listed))
    assert queries[1] == queries[20]


# Migrations, and SQLite (the embedded default) -------------------------------------------------


MIGRATE_SCRIPT = ROOT / "tests" / "labeling" / "counters_migrate_check.py"


def run_migrate_check(database_url: str, tmp_path: Path) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "LABELGPT_VAR_DIR": str(tmp_path / "var"),
        "MEDIA_ROOT": str(tmp_path / "media"),
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
    }
    env.pop("CACHE_URL", None)
    result = subprocess.run(
        [sys.executable, str(MIGRATE_SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["mismatches"] == [], report["mismatches"]
    assert report["steps"] >= 30 and report["reverse_left"] == []
    assert report["backfilled"] == report["expected_after_backfill"]
    assert report["backfilled"]["images_done"] >= 3  # rows written while back at 0007 were counted
    assert report["drift_exit"] == 1 and report["fix_exit"] == 0 and report["after_fix_exit"] == 0
    return report


def test_the_sqlite_triggers_keep_the_counts_exact_in_a_subprocess(tmp_path):
    report = run_migrate_check(f"sqlite:///{tmp_path / 'counters.sqlite3'}", tmp_path)
    assert report["vendor"] == "sqlite"
    assert report["triggers"] == 12 == report["triggers_at_the_end"]
    assert report["triggers_during_migrate"] == 0  # off while a migration may rebuild a table


@pytest.fixture
def scratch_postgres():
    """An empty PostgreSQL database beside the test one (dropped afterwards)."""
    params = connection.settings_dict
    name = f"{connection.settings_dict['NAME']}_counters"[:63]
    maintenance = psycopg.connect(
        dbname="postgres",
        user=params["USER"],
        password=params["PASSWORD"] or None,
        host=params["HOST"] or None,
        port=params["PORT"] or None,
        autocommit=True,
    )
    with maintenance:
        maintenance.execute(f'DROP DATABASE IF EXISTS "{name}"')
        maintenance.execute(f'CREATE DATABASE "{name}"')
        auth = f"{params['USER']}:{params['PASSWORD']}@" if params["PASSWORD"] else f"{params['USER']}@"
        yield f"postgres://{auth}{params['HOST'] or 'localhost'}:{params['PORT'] or 5432}/{name}"
        maintenance.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_postgresql_migration_backfills_reverses_and_keeps_its_triggers_through_alters(
    tmp_path, scratch_postgres
):
    report = run_migrate_check(scratch_postgres, tmp_path)
    assert report["vendor"] == "postgresql"
    assert report["triggers"] == 10 == report["triggers_during_migrate"] == report["triggers_at_the_end"]


def test_the_admins_project_list_shows_the_counted_images(project, admin_user, client_for):
    add_images(project, 3)
    client = client_for(admin_user)
    with CaptureQueriesContext(connection) as captured:
        page = client.get("/admin/labeling/project/?o=2").content.decode()  # sorted by the image count
    assert '<td class="field-image_count">3</td>' in page
    assert not counted_tables(captured)
