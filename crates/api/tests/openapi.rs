//! `api-spec/openapi.yaml` is the contract field apps are written against; it must be
//! exactly what the code serves. After an intended API change, regenerate it with
//! `BAITHAK_UPDATE_SPEC=1 cargo test -p baithak-api --test openapi` and review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

#[test]
fn checked_in_spec_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../api-spec/openapi.yaml");
    let generated = baithak_api::openapi::yaml().unwrap();
    if std::env::var_os("BAITHAK_UPDATE_SPEC").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    if on_disk != generated {
        let first = on_disk
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(on_disk.lines().count().min(generated.lines().count()));
        panic!(
            "api-spec/openapi.yaml differs from the code from line {} on; \
             regenerate with BAITHAK_UPDATE_SPEC=1 and review the diff",
            first + 1
        );
    }
}

#[test]
fn every_route_is_described() {
    let spec: serde_norway::Value =
        serde_norway::from_str(&baithak_api::openapi::yaml().unwrap()).unwrap();
    let paths = spec["paths"].as_mapping().unwrap();
    for (path, methods) in [
        ("/healthz", &["get"][..]),
        ("/readyz", &["get"]),
        ("/v1/auth/login", &["post"]),
        ("/v1/auth/refresh", &["post"]),
        ("/v1/auth/logout", &["post"]),
        ("/v1/areas", &["get"]),
        ("/v1/areas/import", &["post"]),
        ("/v1/users", &["get", "post"]),
        ("/v1/users/{id}", &["get", "patch"]),
        ("/v1/media/{sha256}", &["put", "head", "get"]),
        ("/v1/uploads", &["post"]),
        ("/v1/uploads/{id}", &["patch", "head"]),
        ("/v1/sync/push", &["post"]),
        ("/v1/sync/pull", &["get"]),
        ("/v1/meetings", &["get"]),
        ("/v1/meetings/{id}", &["get"]),
        ("/v1/meetings/{id}/review", &["post"]),
        ("/v1/compliance/daily", &["get"]),
        ("/v1/compliance/summary", &["get"]),
        ("/v1/compliance/inactive", &["get"]),
        ("/v1/reviews", &["post"]),
        ("/v1/reviews/overdue", &["get"]),
        ("/v1/policy", &["get", "put"]),
        ("/v1/feedback", &["get"]),
        ("/v1/feedback/summary", &["get"]),
        ("/v1/audit", &["get"]),
        ("/v1/audit/verify", &["get"]),
        ("/metrics", &["get"]),
        ("/openapi.json", &["get"]),
    ] {
        let entry = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing from the spec"));
        for m in methods {
            assert!(entry.get(*m).is_some(), "{m} {path} missing from the spec");
        }
    }
}
