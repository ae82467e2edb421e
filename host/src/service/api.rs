//! The HTTP API: courses, submissions, results, exports, health and
//! metrics. Every request that touches a course carries a bearer token
//! whose grant allows it; every refusal is JSON that says what was wrong
//! and what to do.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::Service;
use super::blobs::BlobKind;
use super::courses::{CourseError, config_sha256};
use super::openapi::{self, ENDPOINTS, Endpoint};
use super::store::{Enqueued, Grant, NewSubmission, Role, State as Stage, StoreError};
use crate::blame::Blame;
use crate::report::export;

/// The largest submission upload, archive and form together.
pub const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

/// The largest course registration (its component and config).
pub const MAX_COURSE_UPLOAD_BYTES: usize = 256 * 1024 * 1024;

/// The longest a result request waits (`?wait=`).
pub const MAX_RESULT_WAIT: Duration = Duration::from_secs(60);

/// A refusal: its status and what to say.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("no {what}; check the id or name"),
        )
    }

    fn busy(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(30),
            ..Self::new(status, message)
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        tracing::error!(%err, "store");
        Self {
            retry_after: Some(5),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, format!("{err}; try again"))
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.message }))).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

type Reply = Result<Response, ApiError>;

/// A worker's routes: health, metrics and the status page.
pub fn health_router(service: Arc<Service>) -> Router {
    routes(|endpoint| !endpoint.path.starts_with("/v1/")).with_state(service)
}

/// The service's routes: every one of [`ENDPOINTS`], and the staff pages
/// (HTML for people, not part of the API's document).
pub fn router(service: Arc<Service>) -> Router {
    routes(|_| true)
        .merge(super::page::staff_routes())
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .with_state(service)
}

fn routes(keep: impl Fn(&Endpoint) -> bool) -> Router<Arc<Service>> {
    ENDPOINTS
        .iter()
        .filter(|endpoint| keep(endpoint))
        .fold(Router::new(), |router, endpoint| {
            router.route(endpoint.path, method_router(endpoint))
        })
}

/// The handler of `endpoint`.
///
/// # Panics
/// For an endpoint without one (a unit test builds every endpoint's).
pub(super) fn method_router(endpoint: &Endpoint) -> MethodRouter<Arc<Service>> {
    match (endpoint.method, endpoint.path) {
        ("get", "/livez") => get(|| async { "ok\n" }),
        ("get", "/readyz") => get(readyz),
        ("get", "/health/") => get(health),
        ("get", "/metrics") => get(metrics),
        ("get", "/") => get(super::page::status_page),
        ("get", "/v1/openapi.json") => get(|| async { Json(openapi::document()) }),
        ("post", "/v1/courses") => {
            post(add_course).layer(DefaultBodyLimit::max(MAX_COURSE_UPLOAD_BYTES))
        }
        ("get", "/v1/courses/{course}") => get(course),
        ("post", "/v1/courses/{course}/submissions") => post(submit),
        ("get", "/v1/courses/{course}/export") => get(export_course),
        ("get", "/v1/submissions/{id}") => get(submission),
        ("delete", "/v1/submissions/{id}") => delete(cancel),
        ("get", "/v1/submissions/{id}/result") => get(result),
        ("post", "/v1/submissions/{id}/regrade") => post(regrade),
        (method, path) => panic!("no handler for {method} {path}: add it to api::method_router"),
    }
}

/// The grant of the request's bearer token.
async fn grant(service: &Service, headers: &HeaderMap) -> Result<Grant, ApiError> {
    let unauthorized = |why: &str| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            format!(
                "{why}; send `Authorization: Bearer TOKEN` with a token from `agh token create`"
            ),
        )
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("no bearer token"))?;
    service
        .store
        .grant(&super::token_sha256(token.trim()))
        .await?
        .ok_or_else(|| unauthorized("the token is unknown or revoked"))
}

/// The grant, if it allows `role` on `course`.
async fn allowed(
    service: &Service,
    headers: &HeaderMap,
    course: &str,
    role: Role,
) -> Result<Grant, ApiError> {
    let grant = grant(service, headers).await?;
    if grant.allows(course, role) {
        Ok(grant)
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "this token ({} of {}) may not do that for course {course:?}",
                grant.role.name(),
                grant.course.as_deref().unwrap_or("every course")
            ),
        ))
    }
}

async fn readyz(State(service): State<Arc<Service>>) -> Response {
    let store = service.store.ping().await;
    let health = service.health.read().await.ok;
    let ready = store && health;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "store": store, "sandbox_proved": health })),
    )
        .into_response()
}

async fn health(State(service): State<Arc<Service>>) -> Response {
    let health = service.health.read().await.clone();
    let status = if health.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health)).into_response()
}

async fn metrics(State(service): State<Arc<Service>>) -> Reply {
    let stats = service.store.stats().await?;
    let text = super::metrics::render(&stats, &*service.health.read().await)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// `POST /v1/courses`, a form: `name`, `config` (agh.toml's text), and
/// `plugin` (the component) or `builtin` (`io-cases`).
async fn add_course(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Reply {
    let (mut name, mut config, mut plugin, mut builtin) = (None, None, None, None);
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::bad(format!("the form cannot be read: {e}")))?
    {
        let field_name = field.name().unwrap_or_default().to_string();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| ApiError::bad(format!("field {field_name:?} cannot be read: {e}")))?;
        let text = || {
            String::from_utf8(bytes.to_vec())
                .map_err(|_| ApiError::bad(format!("field {field_name:?} is not UTF-8")))
        };
        match field_name.as_str() {
            "name" => name = Some(text()?),
            "config" => config = Some(text()?),
            "builtin" => builtin = Some(text()?),
            "plugin" => plugin = Some(bytes.clone()),
            other => {
                return Err(ApiError::bad(format!(
                    "unknown field {other:?}; send name, config, and plugin or builtin"
                )));
            }
        }
    }
    let name = name.ok_or_else(|| ApiError::bad("no `name` field: name the course"))?;
    crate::names::check_name(&name)
        .map_err(|e| ApiError::bad(format!("course name {name:?}: {e}")))?;
    allowed(&service, &headers, &name, Role::Staff).await?;
    let config =
        config.ok_or_else(|| ApiError::bad("no `config` field: send the course's agh.toml"))?;
    let plugin = match (plugin, builtin) {
        (Some(bytes), None) => service
            .blobs
            .put(bytes, BlobKind::Wasm)
            .await
            .map_err(|e| ApiError::busy(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?,
        (None, Some(builtin)) => format!("builtin:{builtin}"),
        _ => {
            return Err(ApiError::bad(
                "send exactly one of `plugin` (the grader component) and `builtin` (a built-in grader's name)",
            ));
        }
    };
    let checked = service
        .graders
        .check(&name, &plugin, &config, service.grades_here)
        .await
        .map_err(course_refused)?;
    let (version, new) = service
        .store
        .add_version(
            &name,
            &plugin,
            &checked.plugin_sha256,
            &config,
            &config_sha256(&config),
            &checked.grader,
        )
        .await?;
    if let Some(grader) = checked.prepared {
        service.graders.keep(&version, grader).await;
    }
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let webhook_secret = service.store.webhook_secret(&name).await?;
    Ok((
        status,
        Json(json!({ "version": version, "new": new, "webhook_secret": webhook_secret })),
    )
        .into_response())
}

fn course_refused(err: CourseError) -> ApiError {
    match err.blame() {
        Blame::Host => ApiError::busy(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the grader cannot be checked now: {err}"),
        ),
        _ => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the course is refused: {err}"),
        ),
    }
}

async fn course(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(course): Path<String>,
) -> Reply {
    allowed(&service, &headers, &course, Role::Staff).await?;
    let versions = service.store.versions(&course).await?;
    if versions.is_empty() {
        return Err(ApiError::not_found("such course"));
    }
    let webhook_secret = service.store.webhook_secret(&course).await?;
    Ok(
        Json(json!({ "course": course, "versions": versions, "webhook_secret": webhook_secret }))
            .into_response(),
    )
}

#[derive(Debug, Deserialize)]
struct SubmitQuery {
    student: Option<String>,
    callback_url: Option<String>,
}

/// An upload's archive: the body itself (its `Content-Type` names the
/// kind), or a form with `student` and an `archive` file.
async fn upload(
    request: Request,
    query_student: Option<String>,
) -> Result<(String, Bytes, BlobKind), ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let unsupported = || {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type {content_type:?} is not an archive; send application/zip, \
                 application/x-tar or application/gzip, or multipart/form-data with an `archive` file"
            ),
        )
    };
    let too_large = |e: &dyn std::fmt::Display| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the upload cannot be read ({e}); at most {MAX_UPLOAD_BYTES} bytes"),
        )
    };
    if content_type.starts_with("multipart/form-data") {
        let mut form = Multipart::from_request(request, &())
            .await
            .map_err(|e| ApiError::bad(e.to_string()))?;
        let (mut student, mut archive) = (query_student, None);
        while let Some(field) = form.next_field().await.map_err(|e| too_large(&e))? {
            match field.name().unwrap_or_default() {
                "student" => student = Some(field.text().await.map_err(|e| too_large(&e))?),
                "archive" => {
                    let kind = field
                        .file_name()
                        .and_then(BlobKind::of_file_name)
                        .or_else(|| field.content_type().and_then(BlobKind::of_content_type))
                        .ok_or_else(|| {
                            ApiError::new(
                                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                                "the `archive` file is not named .zip, .tar, .tar.gz or .tgz",
                            )
                        })?;
                    archive = Some((field.bytes().await.map_err(|e| too_large(&e))?, kind));
                }
                other => {
                    return Err(ApiError::bad(format!(
                        "unknown field {other:?}; send `student` and `archive`"
                    )));
                }
            }
        }
        let student = student.ok_or_else(no_student)?;
        let (bytes, kind) =
            archive.ok_or_else(|| ApiError::bad("no `archive` file in the form"))?;
        return Ok((student, bytes, kind));
    }
    let kind = BlobKind::of_content_type(&content_type).ok_or_else(unsupported)?;
    let student = query_student.ok_or_else(no_student)?;
    let bytes = Bytes::from_request(request, &())
        .await
        .map_err(|e| too_large(&e))?;
    Ok((student, bytes, kind))
}

fn no_student() -> ApiError {
    ApiError::bad("no student: add `?student=ID` (or a `student` form field)")
}

/// `POST /v1/courses/{course}/submissions`.
async fn submit(
    State(service): State<Arc<Service>>,
    Path(course): Path<String>,
    Query(query): Query<SubmitQuery>,
    request: Request,
) -> Reply {
    let headers = request.headers().clone();
    allowed(&service, &headers, &course, Role::Submit).await?;
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .map(str::to_string)
                .ok_or_else(|| ApiError::bad("Idempotency-Key must be 1 to 255 visible characters"))
        })
        .transpose()?;
    let (queued, ours) = service.store.queued(&course).await?;
    if queued >= service.limits.max_queued {
        return Err(ApiError::busy(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the queue is full ({queued} submissions); try again later"),
        ));
    }
    if ours >= service.limits.max_queued_per_course {
        return Err(ApiError::busy(
            StatusCode::TOO_MANY_REQUESTS,
            format!("course {course:?} has {ours} submissions waiting; try again later"),
        ));
    }
    if let Some(url) = &query.callback_url {
        service.callbacks.check(url).map_err(ApiError::bad)?;
    }
    let (student, bytes, kind) = upload(request, query.student).await?;
    crate::names::check_name(&student)
        .map_err(|e| ApiError::bad(format!("student {student:?}: {e}")))?;
    let archive_sha256 = service
        .blobs
        .put(bytes, kind)
        .await
        .map_err(|e| ApiError::busy(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let new = NewSubmission {
        id: super::new_id("sub"),
        course: course.clone(),
        student,
        archive_sha256,
        archive_kind: kind.name().into(),
        idempotency_key,
        priority: 0,
        regrade_of: None,
        callback_url: query.callback_url,
    };
    accepted(&service, service.store.enqueue(&new).await?).await
}

/// The answer to an enqueue.
async fn accepted(service: &Service, enqueued: Enqueued) -> Reply {
    let id = match enqueued {
        Enqueued::New(id) | Enqueued::Repeated(id) => id,
        Enqueued::KeyReused(id) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "this Idempotency-Key was used for a different upload ({id}); use a new key for a new upload"
                ),
            ));
        }
        Enqueued::NoCourse => {
            return Err(ApiError::not_found(
                "such course; register it with `agh course add`",
            ));
        }
    };
    let mut response = (StatusCode::ACCEPTED, Json(state_of(service, &id).await?)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/submissions/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// A submission's state as the API shows it.
async fn state_of(service: &Service, id: &str) -> Result<serde_json::Value, ApiError> {
    let row = service
        .store
        .submission(id)
        .await?
        .ok_or_else(|| ApiError::not_found("such submission"))?;
    shown(service, &row).await
}

/// `row` as the API shows it, with its place in the queue.
async fn shown(
    service: &Service,
    row: &super::store::SubmissionRow,
) -> Result<serde_json::Value, ApiError> {
    let position = if row.state == Stage::Queued {
        service.store.queue_position(&row.id).await?
    } else {
        None
    };
    let mut value = serde_json::to_value(row).unwrap_or_default();
    value["queue_position"] = json!(position);
    value["result"] = json!(format!("/v1/submissions/{}/result", row.id));
    Ok(value)
}

/// The submission `id`, if the request's token may see it.
async fn visible(
    service: &Service,
    headers: &HeaderMap,
    id: &str,
    role: Role,
) -> Result<super::store::SubmissionRow, ApiError> {
    let grant = grant(service, headers).await?;
    let row = service.store.submission(id).await?;
    match row {
        Some(row) if grant.allows(&row.course, role) => Ok(row),
        // Another course's submission is not told apart from none.
        _ => Err(ApiError::not_found("such submission")),
    }
}

async fn submission(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    let row = visible(&service, &headers, &id, Role::Submit).await?;
    Ok(Json(shown(&service, &row).await?).into_response())
}

#[derive(Debug, Deserialize)]
struct ResultQuery {
    wait: Option<String>,
}

/// `GET /v1/submissions/{id}/result[?wait=30s]`: the result, waiting for
/// it up to `wait`; 202 with the state while there is none.
async fn result(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<ResultQuery>,
) -> Reply {
    visible(&service, &headers, &id, Role::Submit).await?;
    let wait = match query.wait.as_deref() {
        None => Duration::ZERO,
        Some(text) => humantime::parse_duration(text)
            .map_err(|e| ApiError::bad(format!("wait={text:?}: {e}; say e.g. 30s")))?
            .min(MAX_RESULT_WAIT),
    };
    let until = tokio::time::Instant::now() + wait;
    loop {
        if let Some(result) = service.store.result(&id).await? {
            return Ok(Json(result).into_response());
        }
        let state = state_of(&service, &id).await?;
        if state["state"] == "cancelled" {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "the submission was cancelled before a result; it has none",
            ));
        }
        if tokio::time::Instant::now() >= until {
            return Ok((StatusCode::ACCEPTED, Json(state)).into_response());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn cancel(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    visible(&service, &headers, &id, Role::Submit).await?;
    if service.store.cancel(&id).await? {
        Ok(Json(state_of(&service, &id).await?).into_response())
    } else {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "the submission already has its result (or was cancelled); nothing to cancel",
        ))
    }
}

/// `POST /v1/submissions/{id}/regrade`: grades the same archive again with
/// the course's latest version, after students' uploads.
async fn regrade(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    let row = visible(&service, &headers, &id, Role::Staff).await?;
    let new = NewSubmission {
        id: super::new_id("sub"),
        course: row.course,
        student: row.student,
        archive_sha256: row.archive_sha256,
        archive_kind: row.archive_kind,
        idempotency_key: None,
        priority: 1,
        regrade_of: Some(id),
        callback_url: None,
    };
    accepted(&service, service.store.enqueue(&new).await?).await
}

#[derive(Debug, Deserialize)]
struct ExportQuery {
    format: String,
}

/// `GET /v1/courses/{course}/export?format=csv|junit|gradescope`: each
/// student's latest result.
async fn export_course(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(course): Path<String>,
    Query(query): Query<ExportQuery>,
) -> Reply {
    allowed(&service, &headers, &course, Role::Staff).await?;
    let results: Vec<_> = service
        .store
        .latest_results(&course)
        .await?
        .into_iter()
        .map(|(_, result)| result)
        .collect();
    let failed =
        |e: std::io::Error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    Ok(match query.format.as_str() {
        "csv" => (
            [(header::CONTENT_TYPE, "text/csv")],
            export::csv(&results).map_err(failed)?,
        )
            .into_response(),
        "junit" => (
            [(header::CONTENT_TYPE, "application/xml")],
            export::junit(&results),
        )
            .into_response(),
        "gradescope" => Json(
            results
                .iter()
                .map(|r| (r.submission.clone(), export::gradescope(r)))
                .collect::<serde_json::Map<_, _>>(),
        )
        .into_response(),
        other => {
            return Err(ApiError::bad(format!(
                "format {other:?}; choose csv, junit or gradescope"
            )));
        }
    })
}
