from django.urls import include, path

from . import review_views, views

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("projects/new/", views.project_create, name="project-create"),
    path("projects/<int:project_id>/", views.project_detail, name="project-detail"),
    path("projects/<int:project_id>/edit/", views.project_edit, name="project-edit"),
    path("projects/<int:project_id>/images/", views.project_images, name="project-images"),
    path("projects/<int:project_id>/upload/", views.project_upload, name="project-upload"),
    path("projects/<int:project_id>/members/", views.project_members, name="project-members"),
    path("projects/<int:project_id>/prelabel/", views.project_prelabel, name="project-prelabel"),
    path("projects/<int:project_id>/jobs/", views.project_jobs, name="project-jobs"),
    path("jobs/<int:job_id>/", views.job_detail, name="job-detail"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="job-cancel"),
    path("images/<int:image_id>/segment/", views.image_segment, name="image-segment"),
    path("images/<int:image_id>/file/", views.image_file, name="image-file"),
    path("images/<int:image_id>/thumbnail/", views.image_thumbnail, name="image-thumbnail"),
    path("healthz/", views.healthz, name="healthz"),
]

# Review (labeling/review_views.py): the queue, the review page and the canvas's JSON endpoints.
urlpatterns += [
    path("projects/<int:project_id>/review/", review_views.review_next, name="review-next"),
    path("projects/<int:project_id>/threshold/", review_views.project_threshold, name="project-threshold"),
    path("projects/<int:project_id>/leases/", review_views.project_leases, name="project-leases"),
    path("images/<int:image_id>/review/", review_views.review_page, name="image-review"),
    path("images/<int:image_id>/previous/", review_views.image_previous, name="image-previous"),
    path("images/<int:image_id>/annotations/", review_views.image_annotations, name="image-annotations"),
    path(
        "images/<int:image_id>/annotations/bulk/",
        review_views.image_annotations_bulk,
        name="image-annotations-bulk",
    ),
    path("images/<int:image_id>/submit/", review_views.image_submit, name="image-submit"),
    path("images/<int:image_id>/skip/", review_views.image_skip, name="image-skip"),
    path("annotations/<int:annotation_id>/", review_views.annotation_detail, name="annotation-detail"),
]

# Export (labeling/export_views.py): start, the panel, the download.
from . import export_views  # noqa: E402

urlpatterns += [
    path("projects/<int:project_id>/exports/", export_views.project_exports, name="project-exports"),
    path("projects/<int:project_id>/exports/new/", export_views.project_export, name="project-export"),
    path("exports/<int:export_id>/download/", export_views.export_download, name="export-download"),
]

# Import (labeling/import_views.py): a dataset file in, the report out.
from . import import_views  # noqa: E402

urlpatterns += [
    path("projects/<int:project_id>/import/", import_views.project_import, name="project-import"),
]

# Dashboard (labeling/dashboard_urls.py): progress, throughput, workers and model quality.
urlpatterns += [path("", include("labeling.dashboard_urls"))]
