# syntax=docker/dockerfile:1
# The chargemesh binary in a small, non-root runtime image without a shell; the role is chosen
# by the arguments: `serve --role gateway|asset|dispatch|metering|complaints|reporting`,
# `migrate`, `cec-peer`.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Protobufs compile with protox and SQLite is bundled: no protoc, no system libraries.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin chargemesh \
    && cp target/release/chargemesh /chargemesh \
    && strip /chargemesh

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /chargemesh /usr/local/bin/chargemesh
USER 65532:65532
# gRPC of the gateway and the components, the admin health port, the T/CEC 102 edge.
EXPOSE 7443 7001 7002 7003 7004 7005 9090 8443
ENTRYPOINT ["/usr/local/bin/chargemesh"]
CMD ["serve", "--role", "gateway"]
