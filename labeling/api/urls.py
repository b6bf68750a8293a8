"""/api/v1/ routes, the OpenAPI schema (/api/schema/) and its docs page (/api/docs/).

Every API view is marked login_not_required: LoginRequiredMiddleware would redirect an anonymous
caller to the login page, while DRF answers 401 / 403 JSON itself.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import views as v


def api(view_class, **initkwargs):
    return login_not_required(view_class.as_view(**initkwargs))


v1 = [
    path("auth/token/", api(v.TokenView), name="api-token"),
    path("projects/", api(v.ProjectList), name="api-projects"),
    path("projects/<int:project_id>/", api(v.ProjectDetail), name="api-project"),
    path("projects/<int:project_id>/classes/", api(v.ProjectClasses), name="api-project-classes"),
    path("projects/<int:project_id>/members/", api(v.ProjectMembers), name="api-project-members"),
    path(
        "projects/<int:project_id>/members/<int:membership_id>/",
        api(v.ProjectMember),
        name="api-project-member",
    ),
    path("projects/<int:project_id>/invitations/", api(v.ProjectInvitations), name="api-project-invitations"),
    path(
        "projects/<int:project_id>/invitations/<int:invitation_id>/",
        api(v.ProjectInvitation),
        name="api-project-invitation",
    ),
    path("projects/<int:project_id>/images/", api(v.ProjectImages), name="api-project-images"),
    path("projects/<int:project_id>/threshold/", api(v.ProjectThreshold), name="api-project-threshold"),
    path("projects/<int:project_id>/jobs/", api(v.ProjectJobs), name="api-project-jobs"),
    path("projects/<int:project_id>/exports/", api(v.ProjectExports), name="api-project-exports"),
    path("projects/<int:project_id>/imports/", api(v.ProjectImports), name="api-project-imports"),
    path("projects/<int:project_id>/filmstrip/", api(v.ProjectFilmstrip), name="api-project-filmstrip"),
    path("projects/<int:project_id>/image-names/", api(v.ProjectImageNames), name="api-project-image-names"),
    path("images/<int:image_id>/", api(v.ImageDetail), name="api-image"),
    path("images/<int:image_id>/peek-next/", api(v.ImagePeekNext), name="api-image-peek-next"),
    path("images/<int:image_id>/previous/", api(v.ImagePrevious), name="api-image-previous"),
    path("images/<int:image_id>/lease/", api(v.ImageLease), name="api-image-lease"),
    path("images/<int:image_id>/submit/", api(v.ImageSubmit), name="api-image-submit"),
    path("images/<int:image_id>/skip/", api(v.ImageSkip), name="api-image-skip"),
    path("images/<int:image_id>/annotations/", api(v.ImageAnnotations), name="api-image-annotations"),
    path(
        "images/<int:image_id>/annotations/states/",
        api(v.ImageAnnotationStates),
        name="api-image-annotation-states",
    ),
    path(
        "images/<int:image_id>/annotations/accept-above/",
        api(v.AcceptAbove),
        name="api-image-accept-above",
    ),
    path("images/<int:image_id>/segment/", api(v.ImageSegment), name="api-image-segment"),
    path("images/<int:image_id>/find-more/", api(v.ImageFindMore), name="api-image-find-more"),
    path("find-more/<int:request_id>/", api(v.FindMoreDetail), name="api-find-more"),
    path("annotations/<int:annotation_id>/", api(v.AnnotationDetail), name="api-annotation"),
    path("annotations/<int:annotation_id>/accept/", api(v.AnnotationAccept), name="api-annotation-accept"),
    path("annotations/<int:annotation_id>/reject/", api(v.AnnotationReject), name="api-annotation-reject"),
    path("jobs/<int:job_id>/", api(v.JobDetail), name="api-job"),
    path("jobs/<int:job_id>/cancel/", api(v.JobCancel), name="api-job-cancel"),
    path("exports/<int:export_id>/", api(v.ExportDetail), name="api-export"),
    path("exports/<int:export_id>/download/", api(v.ExportDownload), name="api-export-download"),
    path("imports/<int:import_id>/", api(v.ImportDetail), name="api-import"),
    path("projects/<int:project_id>/prompt-lab/", api(v.ProjectPromptLabRuns), name="api-project-prompt-lab"),
    path("prompt-lab/runs/<int:run_id>/", api(v.PromptLabRunDetail), name="api-prompt-lab-run"),
    path("prompt-lab/runs/<int:run_id>/cancel/", api(v.PromptLabRunCancel), name="api-prompt-lab-run-cancel"),
    path(
        "prompt-lab/candidates/<int:candidate_id>/use/",
        api(v.PromptLabCandidateUse),
        name="api-prompt-lab-candidate-use",
    ),
]

urlpatterns = [
    *[path(f"v1/{p.pattern}", p.callback, name=p.name) for p in v1],
    path("schema/", api(SpectacularAPIView, permission_classes=[]), name="api-schema"),
    # The split view serves its init script as a file: no inline <script> (CSP script-src 'self').
    path("docs/", api(SpectacularSwaggerSplitView, url_name="api-schema"), name="api-docs"),
]
