# Multi-stage: build with the full toolchain, run on a slim Debian with only what tasks need.
# The base images are build arguments so a machine without Docker Hub can use local ones, e.g.
# `--build-arg RUNTIME_IMAGE=local/debian:bookworm` (tests/compose/run.sh does).
ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUNTIME_IMAGE} AS runtime
# bash runs shell actions; python3 and perl run the examples' and the original files' scripts.
# /tmp/akkaflow-demo exists owned by akkaflow so the workers' shared `demo` volume starts writable.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates bash python3 perl tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /var/lib/akkaflow akkaflow \
 && install -d -o akkaflow -g akkaflow /tmp/akkaflow-demo
COPY xmlconfig /etc/akkaflow/xmlconfig
USER akkaflow
WORKDIR /var/lib/akkaflow
ENV AKKAFLOW_WORK_DIR=/var/lib/akkaflow/work
EXPOSE 8090
ENTRYPOINT ["/usr/bin/tini", "--", "akkaflow"]
CMD ["standalone", "--xmlconfig", "/etc/akkaflow/xmlconfig"]

# `--target prebuilt`: the runtime with a binary built on the host (same Debian release), for CI.
# It comes before the build stage so that even the classic builder stops short of compiling.
FROM runtime AS prebuilt
ARG AKKAFLOW_BINARY=target/debug/akkaflow
COPY ${AKKAFLOW_BINARY} /usr/local/bin/akkaflow

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY sql ./sql
RUN cargo build --release --locked && strip target/release/akkaflow

FROM runtime
COPY --from=build /src/target/release/akkaflow /usr/local/bin/akkaflow
