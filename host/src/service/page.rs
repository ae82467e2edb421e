//! The status page at `/`: the queue and the sandbox's health, rendered on
//! the server, readable without scripts. It names no course, student or
//! result: it is for whoever runs the service.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Html;

use super::Service;

/// Text for HTML.
fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

/// `GET /`.
pub async fn status_page(State(service): State<Arc<Service>>) -> Html<String> {
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
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>agh service</title><style>\
         body{{font-family:sans-serif;margin:2em}} td{{padding:.2em 1em}} \
         .ok{{color:#060}} .fail{{color:#a00;font-weight:bold}}</style></head><body>\
         <h1>agh {version}</h1>\
         <p id=\"health\" class=\"{class}\">{verdict}</p>\
         <h2>Queue</h2><table id=\"queue\">\
         <tr><td>waiting</td><td id=\"queued\">{queued}</td></tr>\
         <tr><td>grading</td><td id=\"running\">{running}</td></tr>\
         <tr><td>oldest waiting</td><td>{oldest:.0} s</td></tr></table>\
         <h2>Results</h2><table id=\"results\">{results}</table>\
         <h2>Sandbox checks</h2><table id=\"checks\">{checks}</table>\
         </body></html>\n",
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
    ))
}
