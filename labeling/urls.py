from django.urls import path

from . import views

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
