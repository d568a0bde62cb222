{{/* Names, labels, the image and where each secret comes from. */}}

{{- define "seenby.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "seenby.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "seenby.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "seenby.selectorLabels" -}}
app.kubernetes.io/name: {{ include "seenby.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "seenby.labels" -}}
helm.sh/chart: {{ include "seenby.chart" . }}
{{ include "seenby.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: seenby
{{- end }}

{{- define "seenby.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "seenby.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "seenby.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "seenby.imagePullPolicy" -}}
{{- .Values.image.pullPolicy | default (ternary "IfNotPresent" "Always" (not (empty .Values.image.digest))) }}
{{- end }}

{{/* True ("true") when the configured JWT algorithms are HMAC ones (a shared secret). */}}
{{- define "seenby.usesHmac" -}}
{{- $hmac := false }}
{{- range splitList "," .Values.config.jwtAlgorithms }}
{{- if hasPrefix "HS" (trim .) }}{{ $hmac = true }}{{ end }}
{{- end }}
{{- ternary "true" "" $hmac }}
{{- end }}

{{/* True when the JWKS document comes from a Secret (asymmetric algorithms, no jwks.url). */}}
{{- define "seenby.jwksFromSecret" -}}
{{- ternary "true" "" (and (not (include "seenby.usesHmac" .)) (not .Values.jwks.url)) }}
{{- end }}

{{/*
The Secret name holding one secret: <fullname> when the chart keeps its `value`, else the
templated `existingSecret`. Call with (dict "root" $ "item" .Values.secrets.X).
*/}}
{{- define "seenby.secretName" -}}
{{- if .item.value }}
{{- include "seenby.fullname" .root }}
{{- else }}
{{- tpl (required "each secret needs a value or an existingSecret" .item.existingSecret) .root | trim }}
{{- end }}
{{- end }}

{{/*
Fails the render when the ticket key would be the log signing key: the same value, or the same
key of the same Secret. seenby refuses that at start-up; the chart refuses it before install.
*/}}
{{- define "seenby.checkTicketKey" -}}
{{- $s := .Values.secrets }}
{{- if and $s.ticketKey.value (eq (trim $s.ticketKey.value) (trim $s.signingKey.value)) }}
{{- fail "secrets.ticketKey must not be the log signing key (secrets.signingKey): generate a key of its own" }}
{{- end }}
{{- $signing := printf "%s/%s" (include "seenby.secretName" (dict "root" . "item" $s.signingKey)) $s.signingKey.key }}
{{- $ticket := printf "%s/%s" (include "seenby.secretName" (dict "root" . "item" $s.ticketKey)) $s.ticketKey.key }}
{{- if eq $signing $ticket }}
{{- fail (printf "secrets.ticketKey and secrets.signingKey both read %s: the ticket key must be a key of its own" $ticket) }}
{{- end }}
{{- end }}

{{/* The hook Secret with the migration's database URLs that were given as values. */}}
{{- define "seenby.migrationSecretName" -}}
{{- printf "%s-migration" (include "seenby.fullname" .) }}
{{- end }}

{{/* The Secret name a migration Job reads one URL from (hook Secret for values). */}}
{{- define "seenby.migrationUrlSecretName" -}}
{{- if .item.value }}
{{- include "seenby.migrationSecretName" .root }}
{{- else }}
{{- tpl (required "each secret needs a value or an existingSecret" .item.existingSecret) .root | trim }}
{{- end }}
{{- end }}

{{/* PromQL label matchers selecting this release's scrape target. */}}
{{- define "seenby.metricSelector" -}}
job="{{ include "seenby.fullname" . }}",namespace="{{ .Release.Namespace }}"
{{- end }}

{{/* Where secrets are mounted as files in the pod. */}}
{{- define "seenby.signingKeyDir" -}}/etc/seenby/signing-key{{- end }}
{{- define "seenby.ticketKeyDir" -}}/etc/seenby/ticket-key{{- end }}
{{- define "seenby.jwksDir" -}}/etc/seenby/jwks{{- end }}
{{- define "seenby.witnessPolicyDir" -}}/etc/seenby/witness-policy{{- end }}

{{/* Egress every seenby pod needs: PostgreSQL and DNS. */}}
{{- define "seenby.egressRules" -}}
{{- $np := .Values.networkPolicy -}}
- ports:
    - port: {{ $np.egress.postgres.port }}
      protocol: TCP
  {{- with $np.egress.postgres.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
  {{- with $np.egress.dns.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
