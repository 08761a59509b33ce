{{/*
One mesh component: its ServiceAccount, Deployment, Service and PodDisruptionBudget.
Called as (dict "root" $ "component" "asset").
*/}}
{{- define "chargemesh.component" -}}
{{- $root := .root -}}
{{- $c := .component -}}
{{- $v := index $root.Values $c -}}
{{- $full := include "chargemesh.fullname" $root -}}
{{- $ctx := dict "root" $root "component" $c -}}
{{- $role := upper $c -}}
{{- $cec := $root.Values.gateway.cec -}}
{{- $peers := "" -}}
{{- if and $cec.enabled $cec.peersSecret (has $c (list "gateway" "reporting")) -}}
{{- $peers = $cec.peersSecret -}}
{{- end -}}
{{- $crl := "" -}}
{{- if eq $c "gateway" -}}
{{- $crl = $root.Values.gateway.clientCrlSecret -}}
{{- end -}}
{{- $tickets := "" -}}
{{- if eq $c "gateway" -}}
{{- $tickets = $root.Values.gateway.ticketKeySecret | default (printf "%s-tls-tickets" $full) -}}
{{- end -}}
{{- $tokenKey := "" -}}
{{- if and $cec.enabled (eq $c "gateway") -}}
{{- $tokenKey = $cec.tokenKeySecret | default (printf "%s-cec-token" $full) -}}
{{- end -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $full }}-{{ $c }}
  labels:
    {{- include "chargemesh.labels" $ctx | nindent 4 }}
automountServiceAccountToken: false
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $full }}-{{ $c }}
  labels:
    {{- include "chargemesh.labels" $ctx | nindent 4 }}
spec:
  {{- if not (and (eq $c "gateway") $v.autoscaling.enabled) }}
  replicas: {{ $v.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "chargemesh.selectorLabels" $ctx | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  template:
    metadata:
      labels:
        {{- include "chargemesh.labels" $ctx | nindent 8 }}
      annotations:
        checksum/config: {{ include (print $root.Template.BasePath "/config.yaml") $root | sha256sum }}
        {{- with $root.Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ $full }}-{{ $c }}
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      {{- if $root.Values.spreadAcrossNodes }}
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              podAffinityTerm:
                topologyKey: kubernetes.io/hostname
                labelSelector:
                  matchLabels:
                    {{- include "chargemesh.selectorLabels" $ctx | nindent 20 }}
      {{- end }}
      {{- with $root.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ $c }}
          image: {{ include "chargemesh.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args: ["serve", "--role", "{{ $c }}"]
          env:
            - name: CHARGEMESH_CONFIG
              {{- if $peers }}
              value: /etc/chargemesh/config/mesh.toml:/etc/chargemesh/peers/peers.toml
              {{- else }}
              value: /etc/chargemesh/config/mesh.toml
              {{- end }}
            {{- if ne $c "gateway" }}
            - name: CHARGEMESH_{{ $role }}__DATABASE__URL
              valueFrom:
                secretKeyRef:
                  name: {{ $root.Values.database.existingSecret }}
                  key: {{ $root.Values.database.key }}
            {{- end }}
            - name: CHARGEMESH_EVENTS__URL
              valueFrom:
                secretKeyRef:
                  name: {{ $root.Values.redis.existingSecret }}
                  key: {{ $root.Values.redis.key }}
            {{- with $root.Values.tracing.otlpEndpoint }}
            - name: OTEL_EXPORTER_OTLP_ENDPOINT
              value: {{ . | quote }}
            - name: OTEL_SERVICE_NAME
              value: chargemesh-{{ $c }}
            - name: OTEL_TRACES_SAMPLER
              value: parentbased_traceidratio
            - name: OTEL_TRACES_SAMPLER_ARG
              value: {{ $root.Values.tracing.sampleRatio | quote }}
            {{- end }}
          ports:
            - name: grpc
              containerPort: {{ $v.port }}
              protocol: TCP
            - name: admin
              containerPort: {{ $root.Values.adminPort }}
              protocol: TCP
            {{- if and (eq $c "gateway") $v.cec.enabled }}
            - name: cec
              containerPort: {{ $v.cec.port }}
              protocol: TCP
            {{- end }}
            {{- if and (eq $c "gateway") $v.ocpp.enabled }}
            - name: ocpp
              containerPort: {{ $v.ocpp.port }}
              protocol: TCP
            {{- if $v.ocpp.insecurePort }}
            - name: ocpp-insecure
              containerPort: {{ $v.ocpp.insecurePort }}
              protocol: TCP
            {{- end }}
            {{- end }}
            {{- if and (eq $c "gateway") $v.ykc.enabled }}
            - name: ykc
              containerPort: {{ $v.ykc.port }}
              protocol: TCP
            {{- if $v.ykc.tlsPort }}
            - name: ykc-tls
              containerPort: {{ $v.ykc.tlsPort }}
              protocol: TCP
            {{- end }}
            {{- end }}
          startupProbe:
            grpc:
              port: {{ $root.Values.adminPort }}
            periodSeconds: 2
            failureThreshold: 60
          readinessProbe:
            grpc:
              port: {{ $root.Values.adminPort }}
            periodSeconds: 5
            failureThreshold: 2
          livenessProbe:
            grpc:
              port: {{ $root.Values.adminPort }}
            periodSeconds: 10
            failureThreshold: 6
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: config
              mountPath: /etc/chargemesh/config
              readOnly: true
            - name: tls
              mountPath: /etc/chargemesh/tls
              readOnly: true
            - name: tmp
              mountPath: /tmp
            {{- if $peers }}
            - name: peers
              mountPath: /etc/chargemesh/peers
              readOnly: true
            {{- end }}
            {{- if $tokenKey }}
            - name: cec-token
              mountPath: /etc/chargemesh/cec-token
              readOnly: true
            {{- end }}
            {{- if $crl }}
            - name: crl
              mountPath: /etc/chargemesh/crl
              readOnly: true
            {{- end }}
            {{- if $tickets }}
            - name: tls-tickets
              mountPath: /etc/chargemesh/tls-tickets
              readOnly: true
            {{- end }}
            {{- if and (eq $c "gateway") $v.ocpp.enabled }}
            {{- range $v.ocpp.operatorCas }}
            - name: ocpp-ca-{{ lower .operatorId }}
              mountPath: /etc/chargemesh/ocpp-ca/{{ .operatorId }}
              readOnly: true
            {{- end }}
            {{- end }}
      volumes:
        - name: config
          configMap:
            name: {{ $full }}-config
        - name: tls
          secret:
            secretName: {{ $full }}-{{ $c }}-tls
        - name: tmp
          emptyDir: {}
        {{- if $peers }}
        - name: peers
          secret:
            secretName: {{ $peers }}
            items:
              - key: peers.toml
                path: peers.toml
        {{- end }}
        {{- if $crl }}
        - name: crl
          secret:
            secretName: {{ $crl }}
            items:
              - key: crl.pem
                path: crl.pem
        {{- end }}
        {{- if $tickets }}
        - name: tls-tickets
          secret:
            secretName: {{ $tickets }}
            items:
              - key: ticket.key
                path: ticket.key
        {{- end }}
        {{- if and (eq $c "gateway") $v.ocpp.enabled }}
        {{- range $v.ocpp.operatorCas }}
        - name: ocpp-ca-{{ lower .operatorId }}
          secret:
            secretName: {{ .secret }}
            items:
              - key: ca.crt
                path: ca.crt
        {{- end }}
        {{- end }}
        {{- if $tokenKey }}
        - name: cec-token
          secret:
            secretName: {{ $tokenKey }}
            defaultMode: 0400
            items:
              - key: token.key
                path: token.key
        {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $full }}-{{ $c }}
  labels:
    {{- include "chargemesh.labels" $ctx | nindent 4 }}
spec:
  type: {{ if eq $c "gateway" }}{{ $v.serviceType }}{{ else }}ClusterIP{{ end }}
  selector:
    {{- include "chargemesh.selectorLabels" $ctx | nindent 4 }}
  ports:
    - name: grpc
      port: {{ $v.port }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    - name: admin
      port: {{ $root.Values.adminPort }}
      targetPort: admin
      protocol: TCP
      appProtocol: http
    {{- if and (eq $c "gateway") $v.cec.enabled }}
    - name: cec
      port: {{ $v.cec.port }}
      targetPort: cec
      protocol: TCP
      appProtocol: https
    {{- end }}
    {{- if and (eq $c "gateway") $v.ocpp.enabled }}
    - name: ocpp
      port: {{ $v.ocpp.port }}
      targetPort: ocpp
      protocol: TCP
      appProtocol: https
    {{- if $v.ocpp.insecurePort }}
    - name: ocpp-insecure
      port: {{ $v.ocpp.insecurePort }}
      targetPort: ocpp-insecure
      protocol: TCP
      appProtocol: http
    {{- end }}
    {{- end }}
    {{- if and (eq $c "gateway") $v.ykc.enabled }}
    - name: ykc
      port: {{ $v.ykc.port }}
      targetPort: ykc
      protocol: TCP
    {{- if $v.ykc.tlsPort }}
    - name: ykc-tls
      port: {{ $v.ykc.tlsPort }}
      targetPort: ykc-tls
      protocol: TCP
    {{- end }}
    {{- end }}
{{- if $root.Values.podDisruptionBudget.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $full }}-{{ $c }}
  labels:
    {{- include "chargemesh.labels" $ctx | nindent 4 }}
spec:
  maxUnavailable: {{ $root.Values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "chargemesh.selectorLabels" $ctx | nindent 6 }}
{{- end }}
{{- end -}}
