//! The API's endpoints, once: [`ENDPOINTS`] builds both the router
//! (`api::router`) and the OpenAPI document served at `/v1/openapi.json`
//! and kept in `docs/openapi.json`, so neither can name a route the other
//! lacks.

use serde_json::{Map, Value, json};

use super::store::Role;

/// The OpenAPI document's file in the repository.
pub const OPENAPI_FILE: &str = "docs/openapi.json";

/// How a request's body is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No body.
    None,
    /// A submission archive: zip, tar or tar.gz, or a form.
    Archive,
    /// A course registration form.
    CourseForm,
}

/// One endpoint: its method, path (axum's `{name}` captures), what it is
/// for, who may call it, its query parameters, body and answers.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    /// `get`, `post` or `delete`.
    pub method: &'static str,
    /// The path.
    pub path: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// The least role that may call it; `None`: anyone.
    pub role: Option<Role>,
    /// Query parameters: name and meaning.
    pub query: &'static [(&'static str, &'static str)],
    /// Its body.
    pub body: Body,
    /// Its answers: status and meaning.
    pub responses: &'static [(u16, &'static str)],
}

const REFUSALS: [(u16, &str); 2] = [
    (401, "no bearer token, or an unknown or revoked one"),
    (403, "the token's grant does not allow this"),
];

/// Every endpoint of the API, health and metrics first.
pub const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: "get",
        path: "/livez",
        summary: "The process runs.",
        role: None,
        query: &[],
        body: Body::None,
        responses: &[(200, "`ok`")],
    },
    Endpoint {
        method: "get",
        path: "/readyz",
        summary: "The store answers and, where this process grades, the sandbox was proved safe.",
        role: None,
        query: &[],
        body: Body::None,
        responses: &[(200, "ready"), (503, "not ready")],
    },
    Endpoint {
        method: "get",
        path: "/health/",
        summary: "The last health checks (`agh doctor`'s, the gVisor proof among them), run at start and every 5 minutes.",
        role: None,
        query: &[],
        body: Body::None,
        responses: &[
            (200, "every check passed"),
            (503, "a check failed: nothing is graded"),
        ],
    },
    Endpoint {
        method: "get",
        path: "/metrics",
        summary: "Prometheus metrics: queue depth, oldest waiting, running, results by status, sandbox health.",
        role: None,
        query: &[],
        body: Body::None,
        responses: &[(200, "OpenMetrics text")],
    },
    Endpoint {
        method: "get",
        path: "/",
        summary: "The status page.",
        role: None,
        query: &[],
        body: Body::None,
        responses: &[(200, "HTML")],
    },
    Endpoint {
        method: "get",
        path: "/v1/openapi.json",
        summary: "This document.",
        role: None,
        query: &[],
        body: Body::None,
        responses: &[(200, "OpenAPI 3.1")],
    },
    Endpoint {
        method: "post",
        path: "/v1/courses",
        summary: "Registers a course, or a new version of it: its grader is loaded, described and checked against the policy now.",
        role: Some(Role::Staff),
        query: &[],
        body: Body::CourseForm,
        responses: &[
            (201, "a new version"),
            (
                200,
                "this grader and config were registered before: that version",
            ),
            (400, "a missing or malformed field"),
            (422, "the grader or config is refused, and why"),
            (503, "the grader cannot be checked now (Docker, the store)"),
        ],
    },
    Endpoint {
        method: "get",
        path: "/v1/courses/{course}",
        summary: "A course's versions and its callbacks' signing secret.",
        role: Some(Role::Staff),
        query: &[],
        body: Body::None,
        responses: &[(200, "the course"), (404, "no such course")],
    },
    Endpoint {
        method: "post",
        path: "/v1/courses/{course}/submissions",
        summary: "Uploads a submission for a student; it is queued for the course's latest version.",
        role: Some(Role::Submit),
        query: &[
            ("student", "the student's id (or a `student` form field)"),
            (
                "callback_url",
                "where to POST the signed result callback; on the operator's allow-list",
            ),
        ],
        body: Body::Archive,
        responses: &[
            (
                202,
                "queued (or the same upload under the same `Idempotency-Key`): its state",
            ),
            (
                400,
                "no student, a student id that cannot be a file name, or a callback URL not allowed",
            ),
            (404, "no such course"),
            (413, "larger than 64 MiB"),
            (415, "not a zip, tar or tar.gz"),
            (422, "the `Idempotency-Key` was used for a different upload"),
            (429, "the course's queue is full; see `Retry-After`"),
            (503, "the queue is full; see `Retry-After`"),
        ],
    },
    Endpoint {
        method: "get",
        path: "/v1/courses/{course}/export",
        summary: "Each student's latest result, as a gradebook.",
        role: Some(Role::Staff),
        query: &[("format", "`csv`, `junit` or `gradescope`")],
        body: Body::None,
        responses: &[(200, "the export"), (400, "an unknown format")],
    },
    Endpoint {
        method: "get",
        path: "/v1/submissions/{id}",
        summary: "A submission's state, and its place in the queue while it waits.",
        role: Some(Role::Submit),
        query: &[],
        body: Body::None,
        responses: &[
            (200, "its state"),
            (404, "no such submission for this token"),
        ],
    },
    Endpoint {
        method: "delete",
        path: "/v1/submissions/{id}",
        summary: "Withdraws a submission that has no result yet.",
        role: Some(Role::Submit),
        query: &[],
        body: Body::None,
        responses: &[
            (200, "cancelled: its state"),
            (404, "no such submission for this token"),
            (409, "it already has its result"),
        ],
    },
    Endpoint {
        method: "get",
        path: "/v1/submissions/{id}/result",
        summary: "A submission's result, waiting for it up to `wait`.",
        role: Some(Role::Submit),
        query: &[("wait", "how long to wait for it, e.g. `30s` (at most 60 s)")],
        body: Body::None,
        responses: &[
            (200, "the result (docs/result.schema.json)"),
            (202, "no result yet: its state"),
            (404, "no such submission for this token"),
            (409, "cancelled before a result"),
        ],
    },
    Endpoint {
        method: "post",
        path: "/v1/submissions/{id}/regrade",
        summary: "Grades a submission's archive again with the course's latest version, after students' uploads.",
        role: Some(Role::Staff),
        query: &[],
        body: Body::None,
        responses: &[
            (202, "the regrade, queued: its state"),
            (404, "no such submission for this token"),
        ],
    },
];

/// The OpenAPI 3.1 document of [`ENDPOINTS`].
#[must_use]
pub fn document() -> Value {
    let mut paths = Map::new();
    for endpoint in ENDPOINTS {
        let entry = paths
            .entry(endpoint.path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item is an object");
        entry.insert(endpoint.method.into(), operation(endpoint));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "agh service",
            "version": crate::VERSION,
            "description": "Grading behind an LMS: register a course, upload submissions, read their one result each. \
                            Authenticate with `Authorization: Bearer TOKEN` (tokens from `agh token create`).",
        },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": { "error": { "type": "string", "description": "what was wrong and what to do" } },
                },
            },
        },
    })
}

fn operation(endpoint: &Endpoint) -> Value {
    let mut parameters: Vec<Value> = endpoint
        .path
        .split('/')
        .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    parameters.extend(endpoint.query.iter().map(|(name, meaning)| {
        json!({ "name": name, "in": "query", "required": false, "description": meaning, "schema": { "type": "string" } })
    }));
    if endpoint.body == Body::Archive {
        parameters.push(json!({
            "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "retries under one key are one submission", "schema": { "type": "string", "maxLength": 255 },
        }));
    }
    let mut responses = Map::new();
    let refusals = if endpoint.role.is_some() {
        &REFUSALS[..]
    } else {
        &[]
    };
    for (status, meaning) in endpoint.responses.iter().chain(refusals) {
        let mut response = json!({ "description": meaning });
        if *status >= 400 {
            response["content"] = json!({ "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } });
        }
        responses.insert(status.to_string(), response);
    }
    let mut operation =
        json!({ "summary": endpoint.summary, "parameters": parameters, "responses": responses });
    if let Some(role) = endpoint.role {
        operation["security"] = json!([{ "bearer": [] }]);
        operation["x-agh-role"] = json!(role.name());
    }
    match endpoint.body {
        Body::None => {}
        Body::Archive => {
            let binary = json!({ "schema": { "type": "string", "format": "binary" } });
            operation["requestBody"] = json!({
                "required": true,
                "content": {
                    "application/zip": binary, "application/x-tar": binary, "application/gzip": binary,
                    "multipart/form-data": { "schema": { "type": "object", "properties": {
                        "student": { "type": "string" },
                        "archive": { "type": "string", "format": "binary" },
                    } } },
                },
            });
        }
        Body::CourseForm => {
            operation["requestBody"] = json!({
                "required": true,
                "content": { "multipart/form-data": { "schema": {
                    "type": "object",
                    "required": ["name", "config"],
                    "properties": {
                        "name": { "type": "string" },
                        "config": { "type": "string", "description": "the course's agh.toml" },
                        "plugin": { "type": "string", "format": "binary", "description": "the grader component" },
                        "builtin": { "type": "string", "description": "a built-in grader's name, instead of plugin" },
                    },
                } } },
            });
        }
    }
    operation
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document in the repository is the one the endpoints give.
    /// `AGH_WRITE_SCHEMA=1 cargo test -p agh openapi` writes it.
    #[test]
    fn the_openapi_file_matches_the_endpoints() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(OPENAPI_FILE);
        let derived = serde_json::to_string_pretty(&document()).expect("json") + "\n";
        if std::env::var_os("AGH_WRITE_SCHEMA").is_some() {
            std::fs::write(&path, &derived).expect("write the document");
        }
        let kept = std::fs::read_to_string(&path).expect("the OpenAPI file");
        assert!(
            kept == derived,
            "{} differs from the endpoints; run `AGH_WRITE_SCHEMA=1 cargo test -p agh openapi`",
            path.display()
        );
    }

    /// Every endpoint has its handler: building the router would panic on
    /// one without.
    #[test]
    fn every_endpoint_is_routed() {
        for endpoint in ENDPOINTS {
            let _ = super::super::api::method_router(endpoint);
        }
        assert!(ENDPOINTS.len() >= 14);
    }
}
