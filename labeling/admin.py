from django.contrib import admin

from .models import (
    Annotation,
    DetectionCache,
    Export,
    FindMoreRequest,
    Image,
    ImportJob,
    Invitation,
    LabelClass,
    Membership,
    PrelabelJob,
    Project,
    PromptLabCandidate,
    PromptLabRun,
)
from .selectors.projects import counts_image_total


class LabelClassInline(admin.TabularInline):
    model = LabelClass
    extra = 0
    fields = ("name", "prompt", "color", "box_threshold", "order")


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("user",)


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "image_count",
        "box_threshold",
        "text_threshold",
        "prompt_mode",
        "segment",
        "created_at",
    )
    list_filter = ("prompt_mode", "segment", "created_at")
    search_fields = ("name", "description")
    readonly_fields = ("created_by", "created_at", "updated_at")
    inlines = (LabelClassInline, MembershipInline)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_image_count=counts_image_total())

    @admin.display(ordering="_image_count", description="images")
    def image_count(self, obj):
        return obj._image_count


@admin.register(LabelClass)
class LabelClassAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "prompt", "color", "box_threshold", "order")
    list_filter = ("project",)
    search_fields = ("name", "prompt", "project__name")
    list_select_related = ("project",)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "project", "role", "created_at")
    list_filter = ("role", "project")
    search_fields = ("user__username", "user__email", "project__name")
    list_select_related = ("user", "project")
    autocomplete_fields = ("user",)


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = (
        "original_name",
        "project",
        "status",
        "width",
        "height",
        "format",
        "assignee",
        "created_at",
    )
    list_filter = ("status", "format", "project")
    search_fields = ("original_name", "sha256", "project__name")
    list_select_related = ("project", "assignee")
    readonly_fields = (
        "sha256",
        "width",
        "height",
        "size_bytes",
        "format",
        "created_at",
        "updated_at",
        "version",
    )
    raw_id_fields = ("assignee", "uploaded_by")
    date_hierarchy = "created_at"


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ("id", "image", "label_class", "state", "source", "score", "phrase", "updated_at")
    list_filter = ("state", "source", "label_class__project")
    search_fields = ("phrase", "image__original_name", "label_class__name")
    list_select_related = ("image", "label_class")
    raw_id_fields = ("image", "label_class", "job", "created_by", "updated_by")
    readonly_fields = ("version", "created_at", "updated_at")


@admin.register(PrelabelJob)
class PrelabelJobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "project",
        "status",
        "done",
        "failed",
        "total",
        "annotation_count",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "project")
    search_fields = ("project__name", "error")
    list_select_related = ("project",)
    readonly_fields = ("created_at", "started_at", "finished_at")


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "format", "status", "image_count", "annotation_count", "created_at")
    list_filter = ("format", "status", "project")
    search_fields = ("project__name",)
    list_select_related = ("project",)


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "format", "file_name", "status", "annotation_count", "created_at")
    list_filter = ("format", "status", "project")
    search_fields = ("project__name", "file_name")
    list_select_related = ("project",)
    readonly_fields = ("created_at", "started_at", "finished_at")


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Read only: invitations are made and revoked on the Members page (the link is never stored)."""

    list_display = (
        "email",
        "project",
        "role",
        "invited_by",
        "created_at",
        "expires_at",
        "accepted_by",
        "revoked_at",
    )
    list_filter = ("role", "created_at")
    search_fields = ("email", "project__name")
    list_select_related = ("project", "invited_by", "accepted_by")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(FindMoreRequest)
class FindMoreRequestAdmin(admin.ModelAdmin):
    """Read only: made by the review page and the API, run by the interactive workers."""

    list_display = ("id", "image", "label_class", "detector", "status", "created_count", "user", "created_at")
    list_filter = ("status", "detector")
    list_select_related = ("image", "label_class", "user")
    raw_id_fields = ("image", "annotation")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class PromptLabCandidateInline(admin.TabularInline):
    model = PromptLabCandidate
    extra = 0
    fields = (
        "position",
        "prompt",
        "detector",
        "is_baseline",
        "status",
        "seconds_per_image",
        "cached_images",
        "error",
    )
    readonly_fields = fields
    can_delete = False


@admin.register(PromptLabRun)
class PromptLabRunAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "label_class", "status", "sample_size", "seed", "created_at", "seconds")
    list_filter = ("status",)
    raw_id_fields = ("project", "label_class", "created_by")
    inlines = [PromptLabCandidateInline]


@admin.register(DetectionCache)
class DetectionCacheAdmin(admin.ModelAdmin):
    list_display = ("prompt", "detector", "image_sha256", "seconds", "created_at")
    search_fields = ("prompt", "image_sha256")
    readonly_fields = ("key", "image_sha256", "prompt", "detector", "proposals", "seconds", "created_at")
