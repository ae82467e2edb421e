//! S3-compatible storage as an asset source: confined to the granted bucket
//! and prefix, every call under a timeout, objects streamed into the cache
//! and revalidated by ETag.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::SdkError;

use super::cache::AssetCache;
use super::{AssetError, ResolvedFile, safe_relative};
use crate::config::S3Config;

/// Bounds on S3 calls. Metadata calls are short; a download may be large,
/// and stalls inside it are caught by the SDK's stalled-stream protection.
#[derive(Debug, Clone, Copy)]
pub struct S3Timeouts {
    /// Connecting to the endpoint.
    pub connect: Duration,
    /// One HEAD or LIST call, retries included.
    pub metadata: Duration,
    /// One whole download.
    pub download: Duration,
}

impl Default for S3Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(3),
            metadata: Duration::from_secs(15),
            download: Duration::from_secs(1800),
        }
    }
}

/// How long a download may stall before it is abandoned.
const STALL_GRACE: Duration = Duration::from_secs(10);

/// An object in the grant: key, ETag.
struct Object {
    key: String,
    etag: String,
}

/// The SDK's HTTP(S) client, on rustls with ring (agh builds the SDK
/// without its default TLS stack): for every S3 client agh or its tests make.
#[must_use]
pub fn http_client() -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

async fn client(config: &S3Config, timeouts: S3Timeouts) -> Client {
    let timeout_config = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(timeouts.connect)
        .build();
    // A download whose throughput stays below the SDK's floor for the grace
    // period fails instead of hanging; the batch then treats it as an infra error.
    let stalls = aws_config::stalled_stream_protection::StalledStreamProtectionConfig::enabled()
        .grace_period(STALL_GRACE)
        .build();
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http_client())
        .timeout_config(timeout_config)
        .stalled_stream_protection(stalls)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3))
        .load()
        .await;
    let s3 = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(config.path_style)
        .build();
    Client::from_conf(s3)
}

/// Classifies an SDK failure by its kind and HTTP status, never its text.
fn classify<E, R>(what: &str, err: &SdkError<E, R>) -> AssetError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug + HttpStatus,
{
    match err {
        SdkError::ServiceError(service) => match service.raw().status() {
            404 => AssetError::NotFound(format!("{what} does not exist")),
            401 | 403 => {
                AssetError::Refused(format!("{what}: access denied by the storage service"))
            }
            status => {
                AssetError::Unavailable(format!("{what}: the storage service answered {status}"))
            }
        },
        other => AssetError::Unavailable(format!(
            "{what}: storage unreachable ({})",
            aws_sdk_s3::error::DisplayErrorContext(other)
        )),
    }
}

/// The HTTP status of a raw response.
trait HttpStatus {
    fn status(&self) -> u16;
}

impl HttpStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}

async fn timed<T>(
    limit: Duration,
    what: &str,
    call: impl std::future::Future<Output = Result<T, AssetError>>,
) -> Result<T, AssetError> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(AssetError::Unavailable(format!(
            "{what}: no answer within {}s",
            limit.as_secs()
        )))
    })
}

fn join_key(prefix: &str, path: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') {
        format!("{prefix}{path}")
    } else {
        format!("{prefix}/{path}")
    }
}

/// Resolves `path` in the grant to cached files: one object, or every
/// object below `path/`. Returns the files, whether it is one file, and
/// whether it was served stale from the cache.
pub(super) async fn resolve(
    config: &S3Config,
    path: &str,
    cache: &AssetCache,
    timeouts: S3Timeouts,
) -> Result<(Vec<ResolvedFile>, bool, bool), AssetError> {
    let client = client(config, timeouts).await;
    let base = join_key(&config.prefix, path);
    let cache_key = |key: &str| format!("s3://{}/{key}", config.bucket);
    let what = format!("s3://{}/{base}", config.bucket);

    let head = timed(timeouts.metadata, &what, async {
        client
            .head_object()
            .bucket(&config.bucket)
            .key(&base)
            .send()
            .await
            .map_err(|e| classify(&what, &e))
    })
    .await;
    let (objects, single) = match head {
        Ok(found) => (
            vec![Object {
                key: base.clone(),
                etag: found.e_tag().unwrap_or_default().to_string(),
            }],
            true,
        ),
        Err(AssetError::NotFound(_)) => {
            match list(&client, config, &format!("{base}/"), timeouts).await {
                Ok(objects) if objects.is_empty() => {
                    return Err(AssetError::NotFound(format!(
                        "{what} (no object, no folder)"
                    )));
                }
                Ok(objects) => (objects, false),
                Err(AssetError::Unavailable(why)) => {
                    return stale(cache, &cache_key(&format!("{base}/")), &base, false, why);
                }
                Err(other) => return Err(other),
            }
        }
        Err(AssetError::Unavailable(why)) => {
            // A single object cached under exactly this key, else a folder.
            if cache.lookup(&cache_key(&base)).is_some() {
                return stale(cache, &cache_key(&base), &base, true, why);
            }
            return stale(cache, &cache_key(&format!("{base}/")), &base, false, why);
        }
        Err(other) => return Err(other),
    };

    let mut files = Vec::new();
    for object in objects {
        let relative = if single {
            path.rsplit('/').next().unwrap_or(path).to_string()
        } else {
            object
                .key
                .strip_prefix(&format!("{base}/"))
                .unwrap_or_default()
                .to_string()
        };
        if !safe_relative(&relative) {
            return Err(AssetError::Refused(format!(
                "object key {:?} is not a safe path below {base}/",
                object.key
            )));
        }
        let key = cache_key(&object.key);
        let entry = match cache.lookup(&key) {
            Some(entry) if entry.etag == object.etag => entry,
            _ => download(&client, config, &object, &key, cache, timeouts).await?,
        };
        files.push(ResolvedFile {
            path: relative,
            host_path: cache.object_path(&entry.sha256),
            sha256: entry.sha256,
            size: entry.size,
        });
    }
    cache
        .save_index()
        .map_err(|e| AssetError::Unavailable(format!("saving the cache index: {e}")))?;
    Ok((files, single, false))
}

/// Serves what the cache holds under `key_prefix` when storage is down.
fn stale(
    cache: &AssetCache,
    key_prefix: &str,
    base: &str,
    single: bool,
    why: String,
) -> Result<(Vec<ResolvedFile>, bool, bool), AssetError> {
    let cached = if single {
        cache
            .lookup(key_prefix)
            .map(|e| vec![(key_prefix.to_string(), e)])
            .unwrap_or_default()
    } else {
        cache.keys_with_prefix(key_prefix)
    };
    if cached.is_empty() {
        return Err(AssetError::Unavailable(format!(
            "{why}; and nothing of {base} is cached"
        )));
    }
    let files = cached
        .into_iter()
        .map(|(key, entry)| {
            let path = if single {
                base.rsplit('/').next().unwrap_or(base).to_string()
            } else {
                key.strip_prefix(key_prefix).unwrap_or_default().to_string()
            };
            ResolvedFile {
                path,
                host_path: cache.object_path(&entry.sha256),
                sha256: entry.sha256,
                size: entry.size,
            }
        })
        .collect();
    Ok((files, single, true))
}

async fn list(
    client: &Client,
    config: &S3Config,
    prefix: &str,
    timeouts: S3Timeouts,
) -> Result<Vec<Object>, AssetError> {
    let what = format!("s3://{}/{prefix}", config.bucket);
    let mut objects = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = timed(timeouts.metadata, &what, async {
            client
                .list_objects_v2()
                .bucket(&config.bucket)
                .prefix(prefix)
                .set_continuation_token(token.clone())
                .send()
                .await
                .map_err(|e| classify(&what, &e))
        })
        .await?;
        for object in page.contents() {
            let key = object.key().unwrap_or_default();
            if !key.ends_with('/') {
                objects.push(Object {
                    key: key.to_string(),
                    etag: object.e_tag().unwrap_or_default().to_string(),
                });
            }
        }
        if objects.len() > super::MAX_ASSET_FILES {
            return Err(AssetError::Refused(format!(
                "{what} holds more than {} objects",
                super::MAX_ASSET_FILES
            )));
        }
        match page.next_continuation_token() {
            Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
            _ => return Ok(objects),
        }
    }
}

async fn download(
    client: &Client,
    config: &S3Config,
    object: &Object,
    key: &str,
    cache: &AssetCache,
    timeouts: S3Timeouts,
) -> Result<super::cache::CacheEntry, AssetError> {
    let what = format!("s3://{}/{}", config.bucket, object.key);
    timed(timeouts.download, &what, async {
        let response = client
            .get_object()
            .bucket(&config.bucket)
            .key(&object.key)
            .send()
            .await
            .map_err(|e| classify(&what, &e))?;
        let etag = response.e_tag().unwrap_or(&object.etag).to_string();
        let body = response.body;
        let chunks = Box::pin(futures_util::stream::unfold(body, |mut body| async move {
            body.next().await.map(|chunk| (chunk, body))
        }));
        cache
            .store(key, &etag, chunks)
            .await
            .map_err(|e| AssetError::Unavailable(format!("{what}: {e}")))
    })
    .await
}
