"""Kubernetes names under the preview-broker.io/ prefix (a stable contract: users set these)."""

PREFIX = "preview-broker.io/"

LABEL_PREVIEW = PREFIX + "preview"  # namespace selector default: preview-broker.io/preview=true
LABEL_KEEP = PREFIX + "keep"  # "true": exempt from TTL expiry
LABEL_MANAGED = PREFIX + "managed-by"  # on objects the controller creates
LABEL_PR = PREFIX + "pr"  # pull-request number (Argo CD managedNamespaceMetadata)

ANN_HOST = PREFIX + "host"  # one host claimed by the namespace
ANN_EXPOSE = PREFIX + "expose"  # on an Ingress: "true" when INGRESS_HOSTS=annotated
ANN_TTL = PREFIX + "ttl"  # e.g. 72h, counted from the last activity (creation or a new head commit)
ANN_EXPIRES_AT = PREFIX + "expires-at"  # RFC 3339
ANN_DATABASE = PREFIX + "database"  # "true"/"false": override DATABASE_DEFAULT
ANN_BUCKET = PREFIX + "bucket"  # "true"/"false": override BUCKET_DEFAULT
ANN_PR = PREFIX + "pr"
ANN_RETAIN_BUCKET = PREFIX + "retain-bucket"  # "true": keep the bucket and its data on teardown
ANN_GITHUB_REPO = PREFIX + "github-repo"  # owner/name of the pull request's repository
ANN_GITHUB_SHA = PREFIX + "github-sha"  # the pull request's head commit (its change is activity)
ANN_ARGOCD_APP = PREFIX + "argocd-application"  # [namespace/]name of the Argo CD Application that made it
ANN_DATABASE_TARGET_TIME = PREFIX + "database-target-time"  # RFC 3339 point-in-time target of the clone

MANAGER = "preview-broker-controller"

GROUP = "preview-broker.io"
VERSION = "v1alpha1"
PLURAL = "previewenvironments"
KIND = "PreviewEnvironment"
