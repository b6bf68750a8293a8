"""The pages' routes, by aggregate (views in labeling/views/); the JSON API is labeling/api/urls.py."""

from django.urls import path

from .views import dashboard, exports, images, imports, invitations, prelabel, projects, prompt_lab, review

urlpatterns = [
    # Projects and members
    path("", projects.project_list, name="project-list"),
    path("projects/new/", projects.project_create, name="project-create"),
    path("projects/<int:project_id>/", projects.project_detail, name="project-detail"),
    # The project's tabs: Images (project-detail), Pre-label (project-prelabel), Review
    # (review-next, GET), Export & import, Settings (its old URL /edit/ answers the same), Members.
    path("projects/<int:project_id>/settings/", projects.project_settings, name="project-settings"),
    path("projects/<int:project_id>/edit/", projects.project_settings, name="project-edit"),
    path("projects/<int:project_id>/delete/", projects.project_delete_view, name="project-delete"),
    path(
        "projects/<int:project_id>/export-import/",
        projects.project_export_import,
        name="project-export-import",
    ),
    path("projects/<int:project_id>/images/", projects.project_images, name="project-images"),
    path("projects/<int:project_id>/images/delete/", projects.images_delete, name="project-images-delete"),
    path("projects/<int:project_id>/members/", projects.project_members, name="project-members"),
    path("healthz/", projects.healthz, name="healthz"),
    path("invitations/join/", invitations.invitation_join, name="invitation-join"),
    path("invitations/<str:token>/", invitations.invitation_link, name="invitation-accept"),
    # Images
    path("projects/<int:project_id>/upload/", images.project_upload, name="project-upload"),
    path("images/<int:image_id>/file/", images.image_file, name="image-file"),
    path("images/<int:image_id>/thumbnail/", images.image_thumbnail, name="image-thumbnail"),
    # Pre-labeling
    path("projects/<int:project_id>/prelabel/", prelabel.project_prelabel, name="project-prelabel"),
    path("projects/<int:project_id>/jobs/", prelabel.project_jobs, name="project-jobs"),
    path("jobs/<int:job_id>/", prelabel.job_detail, name="job-detail"),
    path("jobs/<int:job_id>/cancel/", prelabel.job_cancel, name="job-cancel"),
    # Prompt lab (managers): measure candidate prompts on images reviewed as done
    path("projects/<int:project_id>/prompt-lab/", prompt_lab.project_prompt_lab, name="project-prompt-lab"),
    path(
        "projects/<int:project_id>/prompt-lab/runs/",
        prompt_lab.project_prompt_lab_runs,
        name="project-prompt-lab-runs",
    ),
    path("prompt-lab/candidates/<int:candidate_id>/use/", prompt_lab.prompt_lab_use, name="prompt-lab-use"),
    path("prompt-lab/runs/<int:run_id>/cancel/", prompt_lab.prompt_lab_cancel, name="prompt-lab-cancel"),
    # Review: the queue and the review page (its script saves through the API, labeling/api/)
    path("projects/<int:project_id>/review/", review.review_next, name="review-next"),
    path("projects/<int:project_id>/leases/", review.project_leases, name="project-leases"),
    path("images/<int:image_id>/review/", review.review_page, name="image-review"),
    path("images/<int:image_id>/previous/", review.image_previous, name="image-previous"),
    # Export and import
    path("projects/<int:project_id>/exports/", exports.project_exports, name="project-exports"),
    path("projects/<int:project_id>/exports/new/", exports.project_export, name="project-export"),
    path(
        "projects/<int:project_id>/exports/options/",
        exports.project_export_options,
        name="project-export-options",
    ),
    path("exports/<int:export_id>/download/", exports.export_download, name="export-download"),
    path("projects/<int:project_id>/import/", imports.project_import, name="project-import"),
    path("projects/<int:project_id>/imports/", imports.project_imports, name="project-imports"),
    # Dashboard: progress, throughput, workers and model quality
    path("dashboard/", dashboard.dashboard_index, name="dashboard"),
    path("dashboard/projects/<int:project_id>/", dashboard.dashboard_project, name="dashboard-project"),
    path(
        "dashboard/projects/<int:project_id>/threshold/",
        dashboard.dashboard_apply_threshold,
        name="dashboard-apply-threshold",
    ),
    path(
        "dashboard/projects/<int:project_id>/refresh/",
        dashboard.dashboard_refresh,
        name="dashboard-refresh",
    ),
]
