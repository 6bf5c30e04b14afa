# syntax=docker/dockerfile:1
#
# The bitstream emulator as a container image: the `bitstream-emulator`
# binary and the real VCC bitstream packages (their plugins built here, in
# release), nothing else. Build and run (needs a Docker engine):
#
#   docker build -t bitstream-emulator:dev .
#   docker run --rm -p 5001:5001 bitstream-emulator:dev \
#       run /opt/bitstream/packages/vcc_processing --bind 0.0.0.0:5001 --id fhs-vcc-emulator-1
#
# deploy/k8s/ holds the Kubernetes manifests that run this image;
# docs/kubernetes.md tells how.

# ---- build: the release binary and the real VCC packages -------------------
# The toolchain the workspace is built and tested with (rustc 1.95).
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
# ci/vcc-package.sh builds the nine real VCC plugins in release and places
# each lib<type>.so into fixtures/vcc_processing*/emulators/<type>/emulator/;
# then the binary. Both are copied out of the cached target directory in the
# same step (a cache mount is gone once the step ends).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    ci/vcc-package.sh release \
    && cargo build --release --locked -p bitstream-host --bin bitstream-emulator \
    && install -D -m 0755 target/release/bitstream-emulator /out/bin/bitstream-emulator \
    && for package in vcc_processing vcc_processing_fan_in; do \
           mkdir -p /out/packages/$package \
           && cp -r fixtures/$package/emulators /out/packages/$package/ ; \
       done \
    && find /out/packages -name '*.so' | sort

# ---- runtime: the binary, the packages, a non-root user ----------------------
# Same Debian release as the build image, so the binary and the plugins find
# the glibc they were linked against.
FROM debian:bookworm-slim AS runtime
RUN groupadd --system --gid 10001 bitstream \
    && useradd --system --uid 10001 --gid bitstream --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin bitstream
COPY --from=build /out/bin/bitstream-emulator /usr/local/bin/bitstream-emulator
# Packages are read only: the engine loads private in-memory copies of
# their plugins (memfd), and a hot swap stages its copy in $TMPDIR.
COPY --from=build /out/packages/ /opt/bitstream/packages/
USER 10001:10001
# 5001: an emulator's HTTP API (as the original's emulators);
# 5002: the injector (`bitstream-emulator injector`, or a fleet's --injector).
EXPOSE 5001 5002
ENTRYPOINT ["/usr/local/bin/bitstream-emulator"]
CMD ["run", "/opt/bitstream/packages/vcc_processing", "--bind", "0.0.0.0:5001"]
