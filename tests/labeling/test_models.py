"""The data model's rules: constraints in the database, and the checks in clean()."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from labeling.models import Annotation, Image, LabelClass, Membership, Project, box_errors
from labeling.services.projects import project_create

pytestmark = pytest.mark.django_db


def make_image(project: Project, *, sha256: str = "a" * 64, width: int = 100, height: int = 50) -> Image:
    return Image.objects.create(
        project=project,
        file=f"projects/{project.pk}/images/{sha256[:2]}/{sha256}.png",
        sha256=sha256,
        width=width,
        height=height,
        original_name=f"{sha256[:8]}.png",
    )


def make_annotation(image: Image, label_class: LabelClass, box) -> Annotation:
    x, y, w, h = box
    return Annotation(image=image, label_class=label_class, x=x, y=y, w=w, h=h)


def refused_by_database(create) -> bool:
    """True when `create()` raises IntegrityError (inside a savepoint, so the test goes on)."""
    try:
        with transaction.atomic():
            create()
    except IntegrityError:
        return True
    return False


# Label classes -------------------------------------------------------------------------------


def test_it_refuses_a_class_name_that_differs_only_in_case(project):
    assert project.classes.filter(name="cat").exists()
    assert refused_by_database(lambda: LabelClass.objects.create(project=project, name="CAT"))
    assert project.classes.filter(name__iexact="cat").count() == 1


def test_it_reports_a_case_insensitive_duplicate_class_in_full_clean(project):
    with pytest.raises(ValidationError):
        LabelClass(project=project, name="Cat", color="#123456").full_clean()


def test_it_allows_the_same_class_name_in_two_projects(project, manager):
    other = project_create(user=manager, name="Garden", classes=[{"name": "Cat"}])
    assert other.classes.get().name == "Cat"
    assert LabelClass.objects.filter(name__iexact="cat").count() == 2


def test_it_defaults_the_prompt_to_the_class_name(project):
    label_class = LabelClass.objects.create(project=project, name="  rocket  ")
    label_class.refresh_from_db()
    assert label_class.name == "rocket"
    assert label_class.prompt == "rocket"


def test_it_keeps_an_explicit_prompt(project):
    assert project.classes.get(name="coffee cup").prompt == "a cup of coffee"


def test_it_uses_the_project_threshold_unless_the_class_overrides_it(project):
    label_class = project.classes.get(name="cat")
    assert label_class.effective_box_threshold == project.box_threshold
    label_class.box_threshold = 0.6
    assert label_class.effective_box_threshold == 0.6


def test_it_refuses_a_class_threshold_outside_zero_to_one(project):
    assert refused_by_database(
        lambda: LabelClass.objects.create(project=project, name="dog", box_threshold=1.2)
    )
    assert refused_by_database(
        lambda: LabelClass.objects.create(project=project, name="dog", box_threshold=-0.1)
    )
    # No override at all is fine.
    assert LabelClass.objects.create(project=project, name="dog", box_threshold=None).pk


# Projects ------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["box_threshold", "text_threshold", "keep_threshold"])
@pytest.mark.parametrize("value", [-0.01, 1.01])
def test_it_refuses_project_thresholds_outside_zero_to_one(field, value):
    fields = {"box_threshold": 1.0, "keep_threshold": 0.0, field: value}
    if field == "box_threshold" and value < 0:
        fields["keep_threshold"] = -1.0  # keep <= box holds; only the range is wrong
    assert refused_by_database(lambda: Project.objects.create(name="P", **fields))
    assert not Project.objects.exists()


def test_it_refuses_a_keep_threshold_above_the_box_threshold_in_the_database():
    assert refused_by_database(
        lambda: Project.objects.create(name="P", box_threshold=0.3, keep_threshold=0.5)
    )
    assert Project.objects.create(name="Q", box_threshold=0.3, keep_threshold=0.3).pk


def test_it_explains_a_keep_threshold_above_the_box_threshold_in_full_clean():
    with pytest.raises(ValidationError) as info:
        Project(name="P", box_threshold=0.3, keep_threshold=0.5).full_clean()
    assert "keep_threshold" in info.value.message_dict


def test_it_makes_the_creator_the_manager(project, manager):
    assert Membership.objects.get(project=project, user=manager).role == Membership.Role.MANAGER
    assert project.created_by == manager


def test_it_refuses_a_second_membership_for_the_same_user(project, annotator):
    assert refused_by_database(
        lambda: Membership.objects.create(project=project, user=annotator, role=Membership.Role.MANAGER)
    )


# Images --------------------------------------------------------------------------------------


def test_it_refuses_the_same_sha256_twice_in_a_project(project):
    make_image(project)
    assert refused_by_database(lambda: make_image(project))
    assert project.images.count() == 1


def test_it_allows_the_same_sha256_in_two_projects(project, manager):
    other = project_create(user=manager, name="Garden", classes=[{"name": "dog"}])
    make_image(project)
    make_image(other)
    assert Image.objects.filter(sha256="a" * 64).count() == 2


def test_it_refuses_an_image_without_pixels(project):
    assert refused_by_database(lambda: make_image(project, width=0))


# Annotations ---------------------------------------------------------------------------------


def test_it_accepts_a_box_that_touches_the_image_edges(project):
    image = make_image(project, width=100, height=50)
    annotation = make_annotation(image, project.classes.first(), (0, 0, 100, 50))
    annotation.full_clean()
    annotation.save()
    assert annotation.pk


@pytest.mark.parametrize(
    "box",
    [
        (90, 10, 20, 10),  # past the right edge
        (10, 45, 10, 10),  # past the bottom edge
        (10, 10, 0, 10),  # zero width
        (10, 10, 10, -5),  # negative height
        (-1, 10, 10, 10),  # left of the image
    ],
)
def test_it_refuses_a_box_that_does_not_fit_the_image_in_full_clean(project, box):
    image = make_image(project, width=100, height=50)
    with pytest.raises(ValidationError) as info:
        make_annotation(image, project.classes.first(), box).full_clean()
    assert "x" in info.value.message_dict


def test_box_errors_say_why_a_box_does_not_fit():
    assert box_errors((0, 0, 100, 50), width=100, height=50) == []
    assert any("past the image" in e for e in box_errors((50, 0, 60, 10), width=100, height=50))
    assert any("positive" in e for e in box_errors((5, 5, 0, 10), width=100, height=50))
    assert any("outside" in e for e in box_errors((-3, 5, 10, 10), width=100, height=50))


def test_it_refuses_a_class_of_another_project_in_full_clean(project, manager):
    other = project_create(user=manager, name="Garden", classes=[{"name": "dog"}])
    image = make_image(project)
    with pytest.raises(ValidationError) as info:
        make_annotation(image, other.classes.get(), (1, 1, 5, 5)).full_clean()
    assert "label_class" in info.value.message_dict


@pytest.mark.parametrize(
    "box",
    [(-1, 0, 10, 10), (0, -1, 10, 10), (0, 0, 0, 10), (0, 0, 10, 0), (0, 0, -4, 10)],
)
def test_the_database_refuses_a_negative_corner_or_an_empty_box(project, box):
    image = make_image(project)
    label_class = project.classes.first()
    assert refused_by_database(lambda: make_annotation(image, label_class, box).save())
    assert not image.annotations.exists()


def test_the_database_refuses_a_score_outside_zero_to_one(project):
    image = make_image(project)
    annotation = make_annotation(image, project.classes.first(), (1, 1, 5, 5))
    annotation.score = 1.5
    assert refused_by_database(annotation.save)
