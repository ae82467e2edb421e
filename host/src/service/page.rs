//! Pages for people, rendered on the server and readable without scripts.
//!
//! `/` is the public status page: the queue and the sandbox's health, no
//! course, student or result. `/staff` and below are for a course's staff
//! and the operator, signed in with their bearer token through a form
//! (`/staff/login`), kept in an HttpOnly, SameSite=Strict cookie scoped to
//! `/staff`: the courses their token allows with their queues, the
//! grading processes and their health, recent submissions, a course's
//! results, and one submission's result. The API itself takes bearer
//! tokens only, never the cookie, so a page can never be made to change
//! anything through the API.
//!
//! Every text a student, grader or course controls goes through
//! [`escape`]; ids in links are percent-encoded.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::store::{Grant, Role, State as Stage, SubmissionRow};
use super::{Service, WORKER_GONE};
use crate::report::html::{details, escape};

/// The cookie a staff session is kept in.
const SESSION_COOKIE: &str = "agh_staff";

/// How long a sign-in lasts.
const SESSION: Duration = Duration::from_secs(8 * 3600);

/// Submissions listed on the overview.
const RECENT: i64 = 25;

/// What the pages may load and do: their own inline style, forms to
/// themselves, nothing else (no scripts, no frames, no other origin).
const CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";

const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:70em} \
     td,th{padding:.2em 1em;text-align:left;vertical-align:top} \
     .ok,.passed{color:#060} .fail,.failed{color:#a00;font-weight:bold} \
     pre{white-space:pre-wrap;margin:0} nav{margin-bottom:1em}";

/// A page: `title` and `body`, with the headers every page carries.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{title}</title><style>{STYLE}</style></head><body>{body}</body></html>\n",
        title = escape(title),
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// A link's path segment for `text`.
fn segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Unix milliseconds as `2026-12-07 23:10:05 UTC`.
fn when(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(at)
        .to_string()
        .replace('T', " ")
        .replace('Z', " UTC")
}

/// `GET /`.
pub async fn status_page(State(service): State<Arc<Service>>) -> Response {
    let stats = service.store.stats().await.unwrap_or_default();
    let health = service.health.read().await.clone();
    let checks: String = health
        .checks
        .iter()
        .map(|c| {
            format!(
                "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
                escape(&c.name),
                if c.ok { "ok" } else { "fail" },
                if c.ok { "ok" } else { "FAILED" },
                escape(c.fix.as_deref().unwrap_or(&c.detail)),
            )
        })
        .collect();
    let results: String = stats
        .done_by_status
        .iter()
        .map(|(status, n)| format!("<tr><td>{}</td><td>{n}</td></tr>", escape(status)))
        .collect();
    let body = format!(
        "<nav><a href=\"/staff\">Staff pages</a></nav>\
         <h1>agh {version}</h1>\
         <p id=\"health\" class=\"{class}\">{verdict}</p>\
         <h2>Queue</h2><table id=\"queue\">\
         <tr><td>waiting</td><td id=\"queued\">{queued}</td></tr>\
         <tr><td>grading</td><td id=\"running\">{running}</td></tr>\
         <tr><td>oldest waiting</td><td>{oldest:.0} s</td></tr></table>\
         <h2>Results</h2><table id=\"results\">{results}</table>\
         <h2>Sandbox checks</h2><table id=\"checks\">{checks}</table>",
        version = crate::VERSION,
        class = if health.ok { "ok" } else { "fail" },
        verdict = if health.ok {
            "Sandboxes proved safe: grading."
        } else {
            "Sandboxes NOT proved safe: nothing is graded until the checks below pass."
        },
        queued = stats.queued,
        running = stats.running,
        oldest = stats.oldest_queued_seconds,
    );
    page(StatusCode::OK, "agh service", &body)
}

/// The staff pages' routes.
pub fn staff_routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/staff", get(overview))
        .route("/staff/login", get(login_form).post(login))
        .route("/staff/logout", post(logout))
        .route("/staff/courses/{course}", get(course_page))
        .route("/staff/submissions/{id}", get(submission_page))
}

/// Why a staff page is not shown.
enum Refused {
    /// Not signed in, the session's token revoked, or a submit token.
    SignIn,
    /// Signed in, but not for this.
    Forbidden(String),
    /// No such course or submission.
    Missing(String),
    /// The store failed.
    Store(String),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn => Redirect::to("/staff/login").into_response(),
            Self::Forbidden(why) => page(
                StatusCode::FORBIDDEN,
                "not allowed",
                &format!(
                    "<nav><a href=\"/staff\">Staff pages</a></nav><p class=\"fail\">{}</p>",
                    escape(&why)
                ),
            ),
            Self::Missing(what) => page(
                StatusCode::NOT_FOUND,
                "not found",
                &format!(
                    "<nav><a href=\"/staff\">Staff pages</a></nav><p class=\"fail\">{}</p>",
                    escape(&what)
                ),
            ),
            Self::Store(why) => page(
                StatusCode::SERVICE_UNAVAILABLE,
                "store unavailable",
                &format!(
                    "<p class=\"fail\">The store cannot be read: {}</p>",
                    escape(&why)
                ),
            ),
        }
    }
}

impl From<super::store::StoreError> for Refused {
    fn from(err: super::store::StoreError) -> Self {
        Self::Store(err.to_string())
    }
}

/// The token in the request's session cookie.
fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(name, value)| (name == SESSION_COOKIE).then_some(value))
}

/// The grant of the signed-in staff member or operator.
async fn signed_in(service: &Service, headers: &HeaderMap) -> Result<Grant, Refused> {
    let token = session_token(headers).ok_or(Refused::SignIn)?;
    let grant = service
        .store
        .grant(&super::token_sha256(token))
        .await?
        .ok_or(Refused::SignIn)?;
    match grant.role {
        Role::Submit => Err(Refused::SignIn),
        Role::Admin | Role::Staff => Ok(grant),
    }
}

/// The courses `grant` may read.
async fn courses_of(service: &Service, grant: &Grant) -> Result<Vec<String>, Refused> {
    Ok(match &grant.course {
        Some(course) => vec![course.clone()],
        None => service.store.courses().await?,
    })
}

fn allows(grant: &Grant, course: &str) -> Result<(), Refused> {
    if grant.allows(course, Role::Staff) {
        Ok(())
    } else {
        Err(Refused::Forbidden(format!(
            "this sign-in ({} of {}) may not read course {course:?}",
            grant.role.name(),
            grant.course.as_deref().unwrap_or("every course")
        )))
    }
}

fn nav(grant: &Grant) -> String {
    format!(
        "<nav><a href=\"/\">Service status</a> · <a href=\"/staff\">Staff pages</a> · \
         signed in as {} of {} · <form method=\"post\" action=\"/staff/logout\" \
         style=\"display:inline\"><button>Sign out</button></form></nav>",
        grant.role.name(),
        escape(grant.course.as_deref().unwrap_or("every course"))
    )
}

fn login_body(message: &str) -> String {
    format!(
        "<nav><a href=\"/\">Service status</a></nav><h1>Staff sign-in</h1>{}\
         <form method=\"post\" action=\"/staff/login\">\
         <label>Token (from <code>agh token create --role staff --course COURSE</code>) \
         <input type=\"password\" name=\"token\" autocomplete=\"off\" required></label> \
         <button>Sign in</button></form>",
        if message.is_empty() {
            String::new()
        } else {
            format!("<p id=\"refused\" class=\"fail\">{}</p>", escape(message))
        }
    )
}

/// `GET /staff/login`.
async fn login_form() -> Response {
    page(StatusCode::OK, "agh staff sign-in", &login_body(""))
}

#[derive(serde::Deserialize)]
struct Login {
    token: String,
}

/// `POST /staff/login`: a token from the form becomes the session cookie.
async fn login(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Form(form): Form<Login>,
) -> Response {
    let token = form.token.trim();
    let refused = |message: &str| {
        page(
            StatusCode::UNAUTHORIZED,
            "agh staff sign-in",
            &login_body(message),
        )
    };
    // A token is `agh_` and hex: anything else is not one, and could not be
    // put in a cookie as it is.
    if !token.starts_with("agh_")
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return refused(
            "that is not an agh token: they begin with agh_ (agh token create prints one)",
        );
    }
    let grant = match service.store.grant(&super::token_sha256(token)).await {
        Ok(Some(grant)) => grant,
        Ok(None) => return refused("the token is unknown or revoked"),
        Err(err) => return Refused::Store(err.to_string()).into_response(),
    };
    if grant.role == Role::Submit {
        return refused(
            "a submit token uploads for an LMS and cannot read results: sign in with a staff or admin token",
        );
    }
    // Secure when the request came over HTTPS through the proxy in front.
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/staff; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    let mut response = Redirect::to("/staff").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /staff/logout`.
async fn logout() -> Response {
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("agh_staff=; Path=/staff; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

fn state_name(row: &SubmissionRow) -> &str {
    match row.state {
        Stage::Queued => "queued",
        Stage::Running => "grading",
        Stage::Done => row.status.as_deref().unwrap_or("done"),
        Stage::Cancelled => "cancelled",
    }
}

fn score_of(row: &SubmissionRow) -> String {
    match (row.score, row.max_score) {
        (Some(score), Some(max)) => format!("{score} / {max}"),
        _ => String::new(),
    }
}

/// `GET /staff`: courses, grading processes, recent submissions.
async fn overview(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
) -> Result<Response, Refused> {
    let grant = signed_in(&service, &headers).await?;
    let mut body = nav(&grant);
    body.push_str("<h1>Staff pages</h1><h2>Courses</h2><table id=\"courses\"><tr><th>course</th><th>versions</th><th>waiting</th></tr>");
    for course in courses_of(&service, &grant).await? {
        let versions = service.store.versions(&course).await?;
        let (_, waiting) = service.store.queued(&course).await?;
        let _ = write!(
            body,
            "<tr><td><a href=\"/staff/courses/{}\">{}</a></td><td>{}</td><td>{waiting}</td></tr>",
            segment(&course),
            escape(&course),
            versions.len()
        );
    }
    body.push_str("</table>");
    // Grading processes: the operator's to see; staff of one course see
    // how many there are and whether they grade.
    let since = super::store::now_ms() - 24 * 3600 * 1000;
    let gone_before = super::store::now_ms() - i64::try_from(WORKER_GONE.as_millis()).unwrap_or(0);
    body.push_str(
        "<h2>Grading processes</h2><table id=\"workers\"><tr><th>worker</th><th>health</th>\
         <th>grading</th><th>slots</th><th>last seen</th></tr>",
    );
    for (i, worker) in service.store.workers(since).await?.iter().enumerate() {
        let (class, health) = if worker.seen_ms < gone_before {
            ("fail", "gone")
        } else if worker.healthy {
            ("ok", "proved safe")
        } else {
            ("fail", "NOT proved safe: not grading")
        };
        let name = if grant.role == Role::Admin {
            escape(&worker.owner)
        } else {
            format!("worker {}", i + 1)
        };
        let _ = write!(
            body,
            "<tr><td>{name}</td><td class=\"{class}\">{health}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            worker.busy,
            worker.slots,
            when(worker.seen_ms)
        );
    }
    body.push_str("</table>");
    body.push_str(
        "<h2>Recent submissions</h2><table id=\"recent\"><tr><th>submission</th><th>course</th>\
         <th>student</th><th>state</th><th>score</th><th>uploaded</th><th>took</th></tr>",
    );
    for row in service
        .store
        .recent(grant.course.as_deref(), RECENT)
        .await?
    {
        let took = row
            .finished_ms
            .map(|end| format!("{:.1} s", (end - row.created_ms) as f64 / 1000.0))
            .unwrap_or_default();
        let _ = write!(
            body,
            "<tr><td><a href=\"/staff/submissions/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{took}</td></tr>",
            segment(&row.id),
            escape(&row.id),
            escape(&row.course),
            escape(&row.student),
            escape(state_name(&row)),
            score_of(&row),
            when(row.created_ms),
        );
    }
    body.push_str("</table>");
    Ok(page(StatusCode::OK, "agh staff", &body))
}

/// `GET /staff/courses/{course}`: each student's latest result.
async fn course_page(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(course): Path<String>,
) -> Result<Response, Refused> {
    let grant = signed_in(&service, &headers).await?;
    allows(&grant, &course)?;
    let versions = service.store.versions(&course).await?;
    if versions.is_empty() {
        return Err(Refused::Missing(format!("no course {course:?}")));
    }
    let mut body = nav(&grant);
    let _ = write!(
        body,
        "<h1>{}</h1><p>{} version(s); the latest grades with {}.</p>\
         <h2>Results</h2><table id=\"results\"><tr><th>student</th><th>submission</th>\
         <th>status</th><th>score</th><th>graded</th></tr>",
        escape(&course),
        versions.len(),
        escape(
            &versions
                .last()
                .map(|v| v.grader.clone())
                .unwrap_or_default()
        ),
    );
    for (row, result) in service.store.latest_results(&course).await? {
        let _ = write!(
            body,
            "<tr><td>{}</td><td><a href=\"/staff/submissions/{}\">{}</a></td><td>{}</td><td>{} / {}</td><td>{}</td></tr>",
            escape(&row.student),
            segment(&row.id),
            escape(&row.id),
            result.status.name(),
            result.score,
            result.max_score,
            row.finished_ms.map(when).unwrap_or_default(),
        );
    }
    body.push_str("</table>");
    Ok(page(StatusCode::OK, &format!("{course}: results"), &body))
}

/// `GET /staff/submissions/{id}`: one submission and its result.
async fn submission_page(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Refused> {
    let grant = signed_in(&service, &headers).await?;
    let missing = || Refused::Missing(format!("no submission {id:?}"));
    let row = service.store.submission(&id).await?.ok_or_else(missing)?;
    // Another course's submission is as absent as one that never was.
    if !grant.allows(&row.course, Role::Staff) {
        return Err(missing());
    }
    let mut body = nav(&grant);
    let _ = write!(
        body,
        "<h1>{}</h1><table id=\"submission\">\
         <tr><td>course</td><td><a href=\"/staff/courses/{}\">{}</a> (version {})</td></tr>\
         <tr><td>student</td><td>{}</td></tr><tr><td>state</td><td id=\"state\">{}</td></tr>\
         <tr><td>score</td><td id=\"score\">{}</td></tr><tr><td>uploaded</td><td>{}</td></tr>\
         <tr><td>attempts</td><td>{}</td></tr></table>",
        escape(&row.id),
        segment(&row.course),
        escape(&row.course),
        row.version,
        escape(&row.student),
        escape(state_name(&row)),
        score_of(&row),
        when(row.created_ms),
        row.attempts,
    );
    if let Some(result) = service.store.result(&id).await? {
        body.push_str("<h2>Tests</h2>");
        details(&mut body, &result);
    }
    Ok(page(StatusCode::OK, &format!("submission {id}"), &body))
}
