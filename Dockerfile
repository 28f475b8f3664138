# danmaku: one static binary in an empty image.
#
#   docker build -t danmaku --build-arg VERSION=v1.0.0 .
#   docker run -p 8080:8080 -e DANMAKU_AUTH_SECRET="$(openssl rand -base64 48)" danmaku
#                                              # the whole system, data in /data; posts
#                                              # need tokens (or -e DANMAKU_ALLOW_ANONYMOUS=true)
#
# The build stage needs the golang image (pulled once, or from a mirror);
# the final stage is FROM scratch and pulls nothing.
ARG GO_IMAGE=golang:1.26

FROM ${GO_IMAGE} AS build
WORKDIR /src

# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
ARG VERSION=dev
# BuildKit sets TARGETOS/TARGETARCH (docker buildx --platform linux/arm64);
# without them the binary is for the build machine.
ARG TARGETOS
ARG TARGETARCH
RUN CGO_ENABLED=0 GOOS="${TARGETOS:-$(go env GOOS)}" GOARCH="${TARGETARCH:-$(go env GOARCH)}" \
    go build -trimpath -ldflags "-s -w -X github.com/danmaku/danmaku/cmd.version=${VERSION}" \
    -o /out/danmaku . \
 && mkdir -p /out/etc /out/data \
 && echo 'danmaku:x:65532:65532:danmaku:/data:/sbin/nologin' > /out/etc/passwd \
 && echo 'danmaku:x:65532:' > /out/etc/group

FROM scratch
# CA certificates: S3, Secrets Manager and TLS NATS are reached over HTTPS.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/etc/passwd /out/etc/group /etc/
# The data directory belongs to the unprivileged user; on ECS the task's
# volume is mounted here and keeps this owner.
COPY --from=build --chown=65532:65532 /out/data /data
COPY --from=build /out/danmaku /danmaku

USER 65532:65532
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["/danmaku"]
CMD ["serve", "--listen", "0.0.0.0:8080", "--data", "/data"]
