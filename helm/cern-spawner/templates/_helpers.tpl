{{/* Object name prefix: <release>-<chart>, or the release name when it already contains the chart's. */}}
{{- define "cs.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "cs.labels" -}}
app.kubernetes.io/name: {{ default .Chart.Name .Values.nameOverride }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: include "cs.selector" (list . "hub") */}}
{{- define "cs.selector" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ default $.Chart.Name $.Values.nameOverride }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* What marks the notebook pods (and claims) of this release, for the pre-delete hook to find them. */}}
{{- define "cs.userPodLabels" -}}
cern.ch/hub-release: {{ .Release.Name }}
cern.ch/hub-namespace: {{ .Release.Namespace }}
{{- end -}}

{{- define "cs.userNamespace" -}}
{{- default .Release.Namespace .Values.singleuser.namespace -}}
{{- end -}}

{{/* The Secret names, chart-made or existing. */}}
{{- define "cs.oidcSecret" -}}
{{- default (printf "%s-oidc" (include "cs.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}
{{- define "cs.cryptSecret" -}}
{{- default (printf "%s-crypt-key" (include "cs.fullname" .)) .Values.hub.cryptKey.existingSecret -}}
{{- end -}}
{{- define "cs.openstackSecret" -}}
{{- default (printf "%s-openstack" (include "cs.fullname" .)) .Values.openstack.existingSecret -}}
{{- end -}}
{{- define "cs.registrySecret" -}}
{{- default (printf "%s-registry" (include "cs.fullname" .)) .Values.registry.existingSecret -}}
{{- end -}}
{{- define "cs.dbSecret" -}}
{{- default (printf "%s-db" (include "cs.fullname" .)) .Values.hub.db.postgres.existingSecret -}}
{{- end -}}
{{- define "cs.profilesConfigMap" -}}
{{- default (printf "%s-profiles" (include "cs.fullname" .)) .Values.profiles.existingConfigMap -}}
{{- end -}}
{{- define "cs.hasOpenstack" -}}
{{- if and .Values.openstack.cloud (or .Values.openstack.cloudsYaml .Values.openstack.existingSecret) }}true{{ end -}}
{{- end -}}
{{- define "cs.hasClusterAPI" -}}
{{- if .Values.gpuScaling.clusterAPI.kubeconfigSecret }}true{{ end -}}
{{- end -}}
{{- define "cs.hasRegistry" -}}
{{- if or .Values.registry.dockerConfigJson .Values.registry.existingSecret }}true{{ end -}}
{{- end -}}
{{/* Binder-from-git launches are on when a registry is named. */}}
{{- define "cs.binderOn" -}}
{{- if .Values.binder.registry }}true{{ end -}}
{{- end -}}
{{/* Where build pods run: binder.builder.namespace, else "<release namespace>-builds" (never the
notebooks' nor the release's namespace: validate.yaml refuses those). */}}
{{- define "cs.buildNamespace" -}}
{{- default (printf "%s-builds" .Release.Namespace) .Values.binder.builder.namespace -}}
{{- end -}}

{{/* Where TLS of the hub's public address ends: ingress, proxy, loadBalancer; empty: plain HTTP. */}}
{{- define "cs.tls" -}}
{{- if .Values.ingress.enabled -}}
{{- if .Values.ingress.tlsSecretName }}ingress{{ end -}}
{{- else if .Values.proxy.https.enabled -}}
{{- .Values.proxy.https.terminate -}}
{{- end -}}
{{- end -}}

{{/* Egress to the cluster DNS (networkPolicy.dns), as a NetworkPolicyEgressRule list item. */}}
{{- define "cs.dnsEgress" -}}
- to:
    - namespaceSelector: {{- toYaml .Values.networkPolicy.dns.namespaceSelector | nindent 8 }}
      podSelector: {{- toYaml .Values.networkPolicy.dns.podSelector | nindent 8 }}
  ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]
{{- end -}}

{{/* Egress to every address but the denied ranges: include "cs.internetEgress" (list . $denied), an
empty $denied meaning networkPolicy.privateCidrs. IPv4 and IPv6 ranges go to their own ipBlock, since
an ipBlock's except must lie inside its cidr. */}}
{{- define "cs.internetEgress" -}}
{{- $ := index . 0 -}}
{{- $v4 := list -}}
{{- $v6 := list -}}
{{- range (index . 1 | default $.Values.networkPolicy.privateCidrs) -}}
{{- if contains ":" . }}{{ $v6 = append $v6 . }}{{ else }}{{ $v4 = append $v4 . }}{{ end -}}
{{- end -}}
- to:
    - ipBlock:
        cidr: 0.0.0.0/0
        {{- with $v4 }}
        except: {{- toYaml . | nindent 10 }}
        {{- end }}
    - ipBlock:
        cidr: ::/0
        {{- with $v6 }}
        except: {{- toYaml . | nindent 10 }}
        {{- end }}
{{- end -}}
{{/* What jupyterhub_config.py turns into c.BinderConfig.*; null when Binder launches are off. */}}
{{- define "cs.binderSettings" -}}
{{- $b := .Values.binder -}}
{{- dict
  "registry" $b.registry
  "imagePrefix" $b.imagePrefix
  "allowedHosts" $b.allowedHosts
  "tokenLaunches" $b.tokenLaunches
  "defaultProfile" $b.defaultProfile
  "perUserBuildLimit" $b.perUserBuildLimit
  "maxConcurrentBuilds" $b.maxConcurrentBuilds
  "buildTimeout" $b.buildTimeout
  "builderImage" $b.builder.image
  "engineSocket" $b.builder.engineSocket
  "buildkitAddress" $b.builder.buildkitAddress
  "buildNamespace" (include "cs.buildNamespace" .)
  "buildResources" $b.builder.resources
  "buildNodeSelector" $b.builder.nodeSelector
  "buildTolerations" $b.builder.tolerations
  "pushSecret" (include "cs.registrySecret" .)
  | toJson -}}
{{- end -}}

{{/* A generated value kept across upgrades: the one in the live Secret, else a new random one.
     include "cs.keep" (list . "<secret name>" "<key>" <length>) */}}
{{- define "cs.keep" -}}
{{- $ := index . 0 -}}
{{- $live := lookup "v1" "Secret" $.Release.Namespace (index . 1) -}}
{{- if and $live (hasKey $live.data (index . 2)) -}}
{{- index $live.data (index . 2) | b64dec -}}
{{- else -}}
{{- randAlphaNum (index . 3) | sha256sum -}}
{{- end -}}
{{- end -}}

{{/* PSA restricted, for the hub and the proxy containers. */}}
{{- define "cs.containerSecurity" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* What the hub's jupyterhub_config.py reads (settings.json): values, never secrets. */}}
{{- define "cs.hubSettings" -}}
{{- $fullname := include "cs.fullname" . -}}
{{- /* auth.endpoints become CERNAuthenticator traits through hub.config (which wins over them):
     explicit endpoints replace discovery's. */ -}}
{{- $endpoints := dict -}}
{{- range $key, $trait := dict "authorize" "authorize_url" "token" "token_url" "jwks" "jwks_uri" "endSession" "end_session_url" -}}
{{- with get $.Values.auth.endpoints $key }}{{ $_ := set $endpoints $trait . }}{{ end -}}
{{- end -}}
{{- $config := deepCopy .Values.hub.config -}}
{{- if $endpoints -}}
{{- $_ := set $config "CERNAuthenticator" (merge (get $config "CERNAuthenticator" | default dict) $endpoints) -}}
{{- end -}}
{{- dict
  "namespace" (include "cs.userNamespace" .)
  "publicUrl" (trimSuffix "/" .Values.hub.publicUrl)
  "hubService" (printf "%s-hub" $fullname)
  "releaseLabels" (include "cs.userPodLabels" . | fromYaml)
  "proxyApiService" (printf "%s-proxy-api" $fullname)
  "db" .Values.hub.db.type
  "issuerUrl" .Values.auth.issuerUrl
  "clientId" .Values.auth.clientId
  "allowedRoles" .Values.auth.allowedRoles
  "adminRoles" .Values.auth.adminRoles
  "exchangeAudiences" .Values.auth.exchangeAudiences
  "exchangeScopes" .Values.auth.exchangeScopes
  "openstackCloud" (ternary .Values.openstack.cloud "" (eq (include "cs.hasOpenstack" .) "true"))
  "registry" (eq (include "cs.hasRegistry" .) "true")
  "clusterApiVersion" (ternary .Values.gpuScaling.clusterAPI.version "" (eq (include "cs.hasClusterAPI" .) "true"))
  "binder" (ternary (include "cs.binderSettings" . | fromJson) nil (eq (include "cs.binderOn" .) "true"))
  "https" (ne (include "cs.tls" .) "")
  "singleuserImage" (include "cs.singleuserImage" .)
  "singleuserImagePullPolicy" .Values.singleuser.image.pullPolicy
  "storage" .Values.singleuser.storage
  "config" $config
  "metricsScraper" (eq (include "cs.metricsScraper" .) "true")
  "culling" .Values.culling
  "smoke" (ternary (dict "user" .Values.smoke.user "roles" (.Values.smoke.roles | default list)) nil .Values.smoke.enabled)
  | toJson -}}
{{- end -}}

{{/* extraEnv (name: value, or name: {valueFrom}) as a container's env list, sorted by name. */}}
{{- define "cs.env" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  {{- if kindIs "map" $value }}
  {{- toYaml $value | nindent 2 }}
  {{- else }}
  value: {{ $value | toString | quote }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* The pod spec keys operators set for a component (hub, proxy): include "cs.placement" .Values.hub */}}
{{- define "cs.placement" -}}
{{- with .nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Node groups and which images their profiles run, from profiles.files:
     {group: {label, taint, images: [...]}} as JSON. Images of profiles.existingConfigMap cannot be
     read at render time: list those in prePuller.extraImages. */}}
{{- define "cs.groupImages" -}}
{{- $groups := dict -}}
{{- $default := include "cs.singleuserImage" . -}}
{{- range $file, $text := .Values.profiles.files -}}
{{- $doc := fromYaml $text -}}
{{- range $name, $g := (get $doc "node_groups" | default dict) -}}
{{- $g = $g | default dict -}}
{{- $_ := set $groups $name (dict "label" (get $g "label" | default "magnum.openstack.org/nodegroup") "taint" (get $g "taint") "images" list) -}}
{{- end -}}
{{- end -}}
{{- range $file, $text := .Values.profiles.files -}}
{{- range (get (fromYaml $text) "profiles" | default list) -}}
{{- $g := get $groups (toString .node_group) -}}
{{- if $g -}}
{{- $images := get $g "images" -}}
{{- if .image_choices -}}
{{- range $choice, $c := .image_choices }}{{ $images = append $images $c.image }}{{ end -}}
{{- else -}}
{{- $images = append $images (.image | default $default) -}}
{{- end -}}
{{- $_ := set $g "images" $images -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $groups -}}
{{- end -}}

{{- define "cs.singleuserImage" -}}
{{- printf "%s:%s" .Values.singleuser.image.repository .Values.singleuser.image.tag -}}
{{- end -}}

{{/* A hub service with only the read:metrics scope, whose token Prometheus presents on /hub/metrics:
     on with the ServiceMonitor, or alone (metrics.token.enabled) for a Prometheus set up by hand. */}}
{{- define "cs.metricsScraper" -}}
{{- if or .Values.metrics.serviceMonitor.enabled .Values.metrics.token.enabled .Values.metrics.token.existingSecret }}true{{ end -}}
{{- end -}}

{{- define "cs.metricsSecret" -}}
{{- .Values.metrics.token.existingSecret | default (printf "%s-metrics" (include "cs.fullname" .)) -}}
{{- end -}}
