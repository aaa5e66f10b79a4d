{{/* Chart name (or nameOverride), truncated for label values. */}}
{{- define "preview-broker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified app name: fullnameOverride, else the release name prefixed with the chart name
unless it already contains it. Truncated to leave room for the "-controller" suffix (63 - 11). */}}
{{- define "preview-broker.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Selector labels: stable for the life of a Deployment (never add version here). */}}
{{- define "preview-broker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "preview-broker.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Full labels: selector labels plus version and management labels. */}}
{{- define "preview-broker.labels" -}}
{{ include "preview-broker.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: preview-broker
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* A pod template's labels: the full labels and the component's podLabels (never in selectors). */}}
{{- define "preview-broker.podLabels" -}}
{{ include "preview-broker.labels" . }}
{{- with .podLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* topologySpreadConstraints with the component's selector filled in where a constraint names none. */}}
{{- define "preview-broker.topologySpread" -}}
{{- $out := list -}}
{{- range .constraints -}}
{{- $c := deepCopy . -}}
{{- if not (hasKey $c "labelSelector") -}}
{{- $_ := set $c "labelSelector" (dict "matchLabels" (include "preview-broker.selectorLabels" $ | fromYaml)) -}}
{{- end -}}
{{- $out = append $out $c -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{- define "preview-broker.brokerName" -}}{{ include "preview-broker.fullname" . }}-broker{{- end -}}
{{- define "preview-broker.controllerName" -}}{{ include "preview-broker.fullname" . }}-controller{{- end -}}

{{- define "preview-broker.secretName" -}}
{{- default (printf "%s-secrets" (include "preview-broker.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* The ServiceAccount a component runs as: its own (created or named), else the namespace's default. */}}
{{- define "preview-broker.serviceAccountName" -}}
{{- $sa := index .root.Values .component "serviceAccount" -}}
{{- $own := ternary (include "preview-broker.brokerName" .root) (include "preview-broker.controllerName" .root) (eq .component "broker") -}}
{{- if $sa.create -}}{{ default $own $sa.name }}{{- else -}}{{ default "default" $sa.name }}{{- end -}}
{{- end -}}

{{- define "preview-broker.image" -}}
{{- $repository := required "image.repository is empty: a chart from a git checkout names no registry; set image.repository (the released chart's default is the path it was released with)" .Values.image.repository -}}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* EXTRA_CA_CERTS for both components: the env entry, the mount and the volume (empty when unset). */}}
{{- define "preview-broker.extraCA.env" -}}
{{- if or .Values.extraCACerts.configMap .Values.extraCACerts.secret }}
- {name: PREVIEW_BROKER_EXTRA_CA_CERTS, value: /etc/preview-broker/extra-ca/{{ .Values.extraCACerts.key }}}
{{- end }}
{{- end -}}
{{- define "preview-broker.extraCA.mount" -}}
{{- if or .Values.extraCACerts.configMap .Values.extraCACerts.secret }}
- {name: extra-ca, mountPath: /etc/preview-broker/extra-ca, readOnly: true}
{{- end }}
{{- end -}}
{{- define "preview-broker.extraCA.volume" -}}
{{- with .Values.extraCACerts }}
{{- if .configMap }}
- name: extra-ca
  configMap: {name: {{ .configMap }}, items: [{key: {{ .key | quote }}, path: {{ .key | quote }}}]}
{{- else if .secret }}
- name: extra-ca
  secret: {secretName: {{ .secret }}, items: [{key: {{ .key | quote }}, path: {{ .key | quote }}}]}
{{- end }}
{{- end }}
{{- end -}}

{{/* "true" when the controller's configuration can delete a namespace, else empty: the mirror of
ControllerSettings.deletes_namespaces (controller/settings.py), from the values that set its settings.
Expiry deletes with expiryAction=delete (a preview's ttl/expires-at annotation can expire it without
defaultTtl); a close deletes with closed.action=delete only where closes are seen: GitHub lookups
(github.enabled, pullRequestCheckInterval not zero) or Argo CD Applications (argocd.namespace). */}}
{{- define "preview-broker.deletesNamespaces" -}}
{{- $c := .Values.controller -}}
{{- $lookups := and $c.github.enabled (regexMatch "[1-9]" (toString $c.github.pullRequestCheckInterval)) -}}
{{- $closes := and (eq $c.closed.action "delete") (or $lookups $c.argocd.namespace) -}}
{{- if and (not $c.dryRun) (or (eq $c.expiryAction "delete") $closes) -}}true{{- end -}}
{{- end -}}

{{/* Refuse combinations that cannot work, with a message that says what to change. */}}
{{- define "preview-broker.validate" -}}
{{- if not .Values.publicUrl -}}
{{- fail "publicUrl is required: the broker's https URL, e.g. --set publicUrl=https://auth.preview.example.com" -}}
{{- end -}}
{{- if and (not .Values.broker.allowHttp) (not (hasPrefix "https://" .Values.publicUrl)) -}}
{{- fail "publicUrl must start with https:// (broker.allowHttp=true is for local development only)" -}}
{{- end -}}
{{- if and .Values.extraCACerts.configMap .Values.extraCACerts.secret -}}
{{- fail "extraCACerts: set configMap or secret, not both" -}}
{{- end -}}
{{- if not .Values.previewDomains -}}
{{- fail "previewDomains is required, e.g. --set previewDomains={preview.example.com}" -}}
{{- end -}}
{{- if not .Values.provider.clientId -}}
{{- fail "provider.clientId is required" -}}
{{- end -}}
{{- if and (eq .Values.provider.kind "oidc") (not .Values.provider.oidcIssuer) -}}
{{- fail "provider.oidcIssuer is required when provider.kind=oidc" -}}
{{- end -}}
{{- if and (eq .Values.provider.kind "oidc") (eq .Values.provider.oidcEmailVerified "entra") (not (regexMatch "^https://login\\.(microsoftonline\\.com|microsoftonline\\.us|partner\\.microsoftonline\\.cn)/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/v2\\.0/?$" .Values.provider.oidcIssuer)) -}}
{{- fail "provider.oidcEmailVerified=entra needs provider.oidcIssuer of one tenant, https://login.microsoftonline.com/<tenant id>/v2.0 (never common, organizations or consumers)" -}}
{{- end -}}
{{- if and (not .Values.secrets.existingSecret) (or (not .Values.secrets.clientSecret) (not .Values.secrets.secretKeys)) -}}
{{- fail "set secrets.existingSecret, or both secrets.clientSecret and secrets.secretKeys" -}}
{{- end -}}
{{- $a := .Values.authorization -}}
{{- if not (or $a.allowedEmailDomains $a.allowedGroups $a.githubOrgs $a.githubTeams) -}}
{{- fail "set at least one authorization rule: authorization.allowedEmailDomains (or [\"*\"]), allowedGroups, githubOrgs or githubTeams" -}}
{{- end -}}
{{- if and (eq .Values.broker.allowlistSource "kubernetes") (not .Values.controller.enabled) -}}
{{- fail "broker.allowlistSource=kubernetes needs controller.enabled=true (or use allowlistSource=static with broker.allowedHosts)" -}}
{{- end -}}
{{- if and .Values.broker.httpRoute.enabled .Values.broker.ingress.enabled -}}
{{- fail "broker.httpRoute.enabled=true needs broker.ingress.enabled=false: expose the broker one way" -}}
{{- end -}}
{{- if and .Values.broker.httpRoute.enabled (not .Values.broker.httpRoute.parentRefs) -}}
{{- fail "broker.httpRoute.enabled=true needs broker.httpRoute.parentRefs (the Gateway to attach to)" -}}
{{- end -}}
{{- if has .Values.provider.clientId .Values.broker.relayClientIds -}}
{{- fail "broker.relayClientIds must not name provider.clientId: the gate client is never relayable (list the preview apps' own client ids)" -}}
{{- end -}}
{{- if eq (int .Values.broker.metricsPort) 8080 -}}
{{- fail "broker.metricsPort must differ from the public port 8080: metrics stay off the public port" -}}
{{- end -}}
{{- if and (eq .Values.broker.allowlistSource "static") (not .Values.broker.allowedHosts) -}}
{{- fail "broker.allowlistSource=static needs broker.allowedHosts" -}}
{{- end -}}
{{- if and .Values.controller.database.default (not .Values.controller.database.enabled) -}}
{{- fail "controller.database.default=true needs controller.database.enabled=true (the CloudNativePG add-on and its rights)" -}}
{{- end -}}
{{- if and .Values.controller.bucket.default (not .Values.controller.bucket.enabled) -}}
{{- fail "controller.bucket.default=true needs controller.bucket.enabled=true (the ACK add-on and its rights)" -}}
{{- end -}}
{{- range .Values.secrets.verifyKeys -}}
{{- if and (not $.Values.secrets.existingSecret) (has . $.Values.secrets.secretKeys) -}}
{{- fail "secrets.verifyKeys names a key that secrets.secretKeys has too: a key either only verifies or signs (docs/operations.md, key rotation)" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.controller.database.default (not .Values.controller.database.destinationPath) -}}
{{- fail "controller.database.default=true needs controller.database.destinationPath (s3://bucket/path)" -}}
{{- end -}}
{{- if and .Values.controller.github.enabled (not .Values.controller.github.existingSecret) -}}
{{- fail "controller.github.enabled=true needs controller.github.existingSecret (keys: token, or app-id, installation-id, private-key)" -}}
{{- end -}}
{{- with .Values.controller.lease -}}
{{- $deadline := ternary (divf (mulf .duration 2) 3) .renewDeadline (kindIs "invalid" .renewDeadline) -}}
{{- if not (lt (float64 $deadline) (float64 .duration)) -}}
{{- fail "controller.lease.renewDeadline must be less than controller.lease.duration (the leader must stop before a follower may take over)" -}}
{{- end -}}
{{- if and (not (kindIs "invalid" .retryPeriod)) (not (lt (mulf .retryPeriod 1.2) (float64 $deadline))) -}}
{{- fail "controller.lease.retryPeriod must be less than renewDeadline / 1.2 (more than one renewal attempt before the deadline)" -}}
{{- end -}}
{{- end -}}
{{- if and (gt (int .Values.controller.replicaCount) 1) (not .Values.controller.leaderElection) -}}
{{- fail "controller.replicaCount > 1 needs controller.leaderElection=true (only one replica may write)" -}}
{{- end -}}
{{- end -}}
