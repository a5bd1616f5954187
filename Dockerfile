# serin's image: a static binary on distroless, running as a non-root user.
#   docker build -t serin:0.1.0 .                      # the operator (`serin operator`, `serin crds`)
#   docker build --build-arg BINARY=serin-loadtester -t serin-loadtester:0.1.0 .
# This machine cannot build or pull images; the chart (deploy/helm/serin) expects the image
# under the name you push it as (values: image.repository, image.tag).

ARG RUST_VERSION=1.89
FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
ARG BINARY=serin
WORKDIR /src
COPY . .
# glibc linked statically (crt-static): the binary needs no libc in the image.
ENV RUSTFLAGS="-C target-feature=+crt-static"
# Without default features: `serin demo` and the test environment it needs are left out.
RUN cargo build --release --locked --no-default-features --target x86_64-unknown-linux-gnu --bin "${BINARY}" \
 && cp "target/x86_64-unknown-linux-gnu/release/${BINARY}" /binary

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /binary /app
USER 65532:65532
EXPOSE 8080
# The chart passes the subcommand (`operator`) and the flags as the container's args.
ENTRYPOINT ["/app"]
