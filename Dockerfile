# Multi-stage: build with the full toolchain, run on a slim Debian with only what tasks need.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY sql ./sql
RUN cargo build --release --locked && strip target/release/akkaflow

FROM debian:bookworm-slim
# bash runs shell actions; python3 and perl run the examples' and the original files' scripts
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates bash python3 perl tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /var/lib/akkaflow akkaflow
COPY --from=build /src/target/release/akkaflow /usr/local/bin/akkaflow
COPY xmlconfig /etc/akkaflow/xmlconfig
USER akkaflow
WORKDIR /var/lib/akkaflow
ENV AKKAFLOW_WORK_DIR=/var/lib/akkaflow/work
EXPOSE 8090
ENTRYPOINT ["/usr/bin/tini", "--", "akkaflow"]
CMD ["standalone", "--xmlconfig", "/etc/akkaflow/xmlconfig"]
