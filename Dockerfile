FROM rust:1-bookworm AS build
RUN apt-get update -qq && apt-get install -y -qq libpq-dev
WORKDIR /src
COPY . .
RUN cargo build --release -p baithak

FROM debian:bookworm-slim
RUN apt-get update -qq && apt-get install -y -qq libpq5 ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/baithak /usr/local/bin/baithak
USER nobody
ENTRYPOINT ["/usr/local/bin/baithak"]
