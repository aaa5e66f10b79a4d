"""The contract between the controller, the brokers and users: the PreviewEnvironment resource
(group, version, plural, path, phases) and every label and annotation under preview-broker.io/.

The controller writes PreviewEnvironments; the brokers watch them; users set the labels and
annotations on their namespaces.  These names are stable: changing one breaks the others.
"""

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
ANN_AUTH_WIRING = PREFIX + "auth-wiring"  # traefik | nginx | off: override AUTH_WIRING for this preview

# The auth wiring the controller generates in a preview namespace (AUTH_WIRING), by these names:
WIRING_MIDDLEWARE = "preview-broker-auth"  # a Traefik ForwardAuth Middleware (Ingress annotation, ExtensionRef)
WIRING_SERVICE = "preview-broker"  # an ExternalName Service pointing at the broker (nginx-style /oauth2/)
WIRING_INGRESS = "preview-broker-oauth2"  # routes /oauth2/ of the preview's hosts to that Service

MANAGER = "preview-broker-controller"

GROUP = "preview-broker.io"
VERSION = "v1alpha1"
PLURAL = "previewenvironments"
KIND = "PreviewEnvironment"

PATH = f"/apis/{GROUP}/{VERSION}/{PLURAL}"  # the cluster-scoped collection

# A preview's phases, in the order a preview usually goes through them.
PHASE_PROVISIONING = "Provisioning"
PHASE_READY = "Ready"
PHASE_FAILED = "Failed"
PHASE_EXPIRED = "Expired"
PHASE_CLOSED = "Closed"
PHASE_TERMINATING = "Terminating"
PHASES = (PHASE_PROVISIONING, PHASE_READY, PHASE_FAILED, PHASE_EXPIRED, PHASE_CLOSED, PHASE_TERMINATING)
# No host of a preview in one of these phases is live, whatever its status still lists.
NOT_LIVE = frozenset({PHASE_EXPIRED, PHASE_CLOSED, PHASE_TERMINATING})
