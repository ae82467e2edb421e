//! Result callbacks, signed as Standard Webhooks sign them: headers
//! `webhook-id`, `webhook-timestamp` and `webhook-signature`
//! (`v1,` and the base64 HMAC-SHA256, under the course's secret, of
//! `ID.TIMESTAMP.BODY`). A callback is written in the transaction that
//! records its result, so each result is announced; the API sends it and
//! tries again with a back-off. Callbacks go only to URLs the operator
//! allowed (`--callback-allow`), and redirects are never followed.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use super::store::{Delivery, Store};

/// Attempts at one callback before it is given up.
pub const MAX_CALLBACK_ATTEMPTS: i64 = 10;

/// How long one attempt may take.
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);

/// A new signing secret: `whsec_` and 24 random bytes in base64.
#[must_use]
pub fn new_secret() -> String {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the operating system gives random bytes");
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// The `webhook-signature` of `body` sent as message `id` at `timestamp`.
#[must_use]
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .unwrap_or_default();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes a key of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The URLs callbacks may go to: each entry a URL prefix, matched on
/// scheme, host and port exactly and on path by prefix.
#[derive(Debug, Clone, Default)]
pub struct CallbackAllow {
    allowed: Vec<url::Url>,
}

impl CallbackAllow {
    /// The allow-list of `entries`.
    ///
    /// # Errors
    /// The entry that is not an http(s) URL.
    pub fn new(entries: &[String]) -> Result<Self, String> {
        let allowed = entries
            .iter()
            .map(|entry| {
                url::Url::parse(entry)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                    .ok_or_else(|| {
                        format!("--callback-allow {entry:?} is not an http(s) URL such as https://lms.example.edu/agh/")
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { allowed })
    }

    /// Checks a submitter's `callback_url`.
    ///
    /// # Errors
    /// Why it is refused.
    pub fn check(&self, candidate: &str) -> Result<(), String> {
        if self.allowed.is_empty() {
            return Err("this service sends no callbacks (its operator allowed none with --callback-allow); poll the result instead".into());
        }
        let url = url::Url::parse(candidate)
            .map_err(|e| format!("callback_url {candidate:?} is not a URL: {e}"))?;
        let allowed = self.allowed.iter().any(|a| {
            a.scheme() == url.scheme()
                && a.host() == url.host()
                && a.port_or_known_default() == url.port_or_known_default()
                && url.path().starts_with(a.path())
                && url.username().is_empty()
                && url.password().is_none()
        });
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "callback_url {candidate:?} is not on the operator's allow-list (--callback-allow)"
            ))
        }
    }
}

/// Sends due callbacks until `stop`.
pub async fn deliver(store: Store, allow: Arc<CallbackAllow>, stop: CancellationToken) {
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(CALLBACK_TIMEOUT)
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(%err, "cannot make an HTTP client; no callbacks are sent");
            return;
        }
    };
    loop {
        let due = store.claim_delivery(CALLBACK_TIMEOUT * 3).await;
        match due {
            Ok(Some(delivery)) => {
                let outcome = send(&store, &client, &allow, &delivery).await;
                if let Err((why, _)) = &outcome {
                    tracing::warn!(submission = %delivery.submission.id, attempt = delivery.attempts, %why, "callback failed");
                }
                if let Err(err) = store.delivery_outcome(&delivery, outcome).await {
                    tracing::error!(%err, "cannot record a callback's outcome");
                }
                continue;
            }
            Ok(None) => {}
            Err(err) => tracing::error!(%err, "cannot read callbacks from the store"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// One attempt: `Ok`, or why not and when to try again (`None`: never).
async fn send(
    store: &Store,
    client: &reqwest::Client,
    allow: &CallbackAllow,
    delivery: &Delivery,
) -> Result<(), (String, Option<Duration>)> {
    // The allow-list may have changed since the upload.
    allow.check(&delivery.url).map_err(|why| (why, None))?;
    let row = &delivery.submission;
    let secret = store
        .webhook_secret(&row.course)
        .await
        .map_err(|e| (e.to_string(), Some(Duration::from_secs(30))))?
        .unwrap_or_default();
    let timestamp = super::store::now_ms() / 1000;
    let id = format!("msg_{}", delivery.seq);
    let body = serde_json::to_vec(&serde_json::json!({
        "type": "submission.done",
        "timestamp": timestamp,
        "data": {
            "id": row.id,
            "course": row.course,
            "version": row.version,
            "student": row.student,
            "status": row.status,
            "score": row.score,
            "max_score": row.max_score,
            "result": format!("/v1/submissions/{}/result", row.id),
        },
    }))
    .unwrap_or_default();
    let retry = || {
        (delivery.attempts < MAX_CALLBACK_ATTEMPTS).then(|| {
            Duration::from_secs(5u64.saturating_mul(1 << delivery.attempts.clamp(0, 10)))
                .min(Duration::from_secs(3600))
        })
    };
    let response = client
        .post(&delivery.url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            signature(&secret, &id, timestamp, &body),
        )
        .body(body)
        .send()
        .await
        .map_err(|e| (e.to_string(), retry()))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err((
            format!("the receiver answered {}", response.status()),
            retry(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification signs as it says.
    #[test]
    fn signatures_match_the_specification_example() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    /// Only allowed prefixes pass; no callbacks when none are allowed.
    #[test]
    fn the_allow_list_matches_scheme_host_port_and_path_prefix() {
        let none = CallbackAllow::default();
        assert!(none.check("http://127.0.0.1:9/x").is_err());
        let allow = CallbackAllow::new(&["http://127.0.0.1:9000/agh/".into()]).expect("allow");
        assert!(allow.check("http://127.0.0.1:9000/agh/done").is_ok());
        for refused in [
            "http://127.0.0.1:9001/agh/done",
            "https://127.0.0.1:9000/agh/done",
            "http://127.0.0.2:9000/agh/done",
            "http://127.0.0.1:9000/other",
            "http://user@127.0.0.1:9000/agh/",
            "not a url",
        ] {
            assert!(allow.check(refused).is_err(), "{refused}");
        }
        assert!(CallbackAllow::new(&["ftp://x/".into()]).is_err());
    }
}
