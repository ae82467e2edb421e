//! The service's store: courses, tokens and the submissions queue in one
//! database, SQLite in the data folder (`DATA/agh.sqlite`) for one machine
//! or PostgreSQL for many, the same statements for both (sqlx's `Any`
//! driver; `$N` parameters, which both read). Each change of a submission's
//! state one statement or one transaction, so a crash at any point leaves
//! every submission in exactly one state. Workers take a submission with a
//! lease and a fence: a worker's later writes name the fence it claimed
//! with, so one whose lease ran out (it stalled, or was killed) and was
//! taken over writes nothing, and each submission gets exactly one result.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::Digest as _;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool};
use sqlx::{Executor as _, Row};

use crate::report::{Retry, Status, SubmissionResult};

/// Attempts at a submission (infra errors and lost workers together)
/// before its result is an infra error.
pub const MAX_SERVICE_ATTEMPTS: i64 = 3;

/// How long a claim holds a submission without a heartbeat.
pub const LEASE: Duration = Duration::from_secs(30);

/// Why the store failed: the database's own error, or a row that does
/// not say what it should.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database answered with an error, or could not be reached.
    #[error("the store failed: {0}")]
    Database(#[from] sqlx::Error),
    /// Its schema could not be brought up to date.
    #[error("the store's schema could not be migrated: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value that agh cannot read back.
    #[error("the store holds an unreadable {0}")]
    Corrupt(String),
    /// A store URL of no known kind.
    #[error("a store URL starts with sqlite: or postgres://, not {0:?}")]
    Url(String),
}

/// A submission's place in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Waiting for a grading slot.
    Queued,
    /// A worker holds it.
    Running,
    /// Its one result is recorded.
    Done,
    /// Withdrawn before a result.
    Cancelled,
}

impl State {
    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "done" => Self::Done,
            "cancelled" => Self::Cancelled,
            other => return Err(StoreError::Corrupt(format!("state {other:?}"))),
        })
    }
}

/// Who a bearer token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The operator: registers courses, sees everything.
    Admin,
    /// A course's staff: its versions, every submission and result, exports.
    Staff,
    /// An LMS submitting for a course's students: uploads, and reads what it
    /// uploaded by id.
    Submit,
}

impl Role {
    /// Its name in the store and on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Staff => "staff",
            Self::Submit => "submit",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "admin" => Self::Admin,
            "staff" => Self::Staff,
            "submit" => Self::Submit,
            other => return Err(StoreError::Corrupt(format!("role {other:?}"))),
        })
    }
}

/// A token's grant: its role, for one course or (admin) all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// What it may do.
    pub role: Role,
    /// The course it is for; `None` for an admin.
    pub course: Option<String>,
}

impl Grant {
    /// True when it may act as `role` (or more) on `course`.
    #[must_use]
    pub fn allows(&self, course: &str, role: Role) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Staff => self.course.as_deref() == Some(course),
            Role::Submit => role == Role::Submit && self.course.as_deref() == Some(course),
        }
    }
}

/// A registered version of a course.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CourseVersion {
    /// The course.
    pub course: String,
    /// 1, 2, ... in order of registration.
    pub version: i64,
    /// `builtin:NAME`, or the component's sha256 in the blob store.
    pub plugin: String,
    /// The component's sha256.
    pub plugin_sha256: String,
    /// The `agh.toml` it was registered with.
    #[serde(skip)]
    pub config_toml: String,
    /// That text's sha256.
    pub config_sha256: String,
    /// The grader's name and version, as it describes itself.
    pub grader: String,
    /// When it was registered.
    pub created_ms: i64,
}

/// A new submission, as uploaded.
#[derive(Debug, Clone)]
pub struct NewSubmission {
    /// Its id, made by the caller.
    pub id: String,
    /// The course.
    pub course: String,
    /// The student it is for.
    pub student: String,
    /// The archive's sha256 in the blob store.
    pub archive_sha256: String,
    /// `zip`, `tar` or `tar.gz`.
    pub archive_kind: String,
    /// The caller's `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// 0 for a student's upload, 1 for a regrade.
    pub priority: i64,
    /// The submission a regrade grades again.
    pub regrade_of: Option<String>,
    /// Where its result is announced.
    pub callback_url: Option<String>,
}

/// What became of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued under this id.
    New(String),
    /// The same request was made before under the same key: its id.
    Repeated(String),
    /// The key was used before for a different upload.
    KeyReused(String),
    /// The course is not registered.
    NoCourse,
}

/// A submission as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SubmissionRow {
    /// Its id.
    pub id: String,
    /// Its course.
    pub course: String,
    /// The course version that grades it.
    pub version: i64,
    /// The student.
    pub student: String,
    /// Where it is.
    pub state: State,
    /// Attempts begun.
    pub attempts: i64,
    /// Its result's status, once done.
    pub status: Option<String>,
    /// Its score, once done.
    pub score: Option<f64>,
    /// Its maximum score, once done.
    pub max_score: Option<f64>,
    /// The submission it regrades.
    pub regrade_of: Option<String>,
    /// When it was uploaded.
    pub created_ms: i64,
    /// When its result was recorded.
    pub finished_ms: Option<i64>,
    /// The archive's sha256.
    pub archive_sha256: String,
    /// The archive's kind.
    pub archive_kind: String,
    /// Its priority.
    pub priority: i64,
}

/// A submission a worker holds.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The submission.
    pub id: String,
    /// Its course and version.
    pub course: String,
    /// The version that grades it.
    pub version: i64,
    /// The student it is for: the name its result is recorded under.
    pub student: String,
    /// The archive in the blob store.
    pub archive_sha256: String,
    /// Its kind.
    pub archive_kind: String,
    /// The fence this claim writes with.
    pub fence: i64,
    /// Attempts begun, this one included.
    pub attempts: i64,
    /// Earlier attempts that ended in infra errors or lost workers.
    pub retries: Vec<Retry>,
}

/// A result callback to send.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Its number, which is its `webhook-id`.
    pub seq: i64,
    /// Where it goes.
    pub url: String,
    /// Attempts begun, this one included.
    pub attempts: i64,
    /// The submission it announces.
    pub submission: SubmissionRow,
}

/// Counts for `/metrics` and the status page.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct QueueStats {
    /// Submissions waiting.
    pub queued: i64,
    /// Submissions a worker holds.
    pub running: i64,
    /// Age of the oldest waiting submission, in seconds.
    pub oldest_queued_seconds: f64,
    /// Results recorded, by status.
    pub done_by_status: Vec<(String, i64)>,
}

/// A grading process as it last reported itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkerRow {
    /// Who it is in leases.
    pub owner: String,
    /// Its grading slots.
    pub slots: i64,
    /// Submissions it holds now.
    pub busy: i64,
    /// Its sandbox was proved safe when it last reported.
    pub healthy: bool,
    /// When it started, in Unix milliseconds.
    pub started_ms: i64,
    /// When it last reported.
    pub seen_ms: i64,
}

/// The current time in Unix milliseconds.
#[must_use]
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Which database a store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, in the data folder: one machine.
    Sqlite,
    /// PostgreSQL: any number of API replicas and workers.
    Postgres,
}

/// The store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    /// Where writes go. SQLite takes one writer at a time, and a second
    /// one waits in SQLite's busy handler, which sleeps and polls (tens of
    /// milliseconds an upload, under load); one connection here makes this
    /// process's writers queue in order instead. PostgreSQL's is the pool.
    writer: AnyPool,
    backend: Backend,
}

/// Characters a file name must not carry unescaped into a `sqlite://` URL.
const URL_UNSAFE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b'%')
    .add(b'?')
    .add(b'#')
    .add(b' ');

impl Store {
    /// Opens (creating it when missing) the SQLite store in folder `data`
    /// and brings its schema up to date.
    ///
    /// # Errors
    /// When the database cannot be opened or migrated.
    pub async fn open(data: &Path) -> Result<Self, StoreError> {
        let file = data.join("agh.sqlite");
        let path = file
            .to_str()
            .ok_or_else(|| StoreError::Corrupt(format!("data folder name {}", file.display())))?;
        let url = format!(
            "sqlite://{}?mode=rwc",
            percent_encoding::utf8_percent_encode(path, URL_UNSAFE)
        );
        Self::connect(&url).await
    }

    /// Connects to the store at `url` (`sqlite://PATH` or
    /// `postgres://USER@HOST/DB`) and brings its schema up to date.
    ///
    /// # Errors
    /// When the database cannot be reached or migrated.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::Url(
                url.split(':').next().unwrap_or_default().to_string(),
            ));
        };
        let options = |connections| {
            AnyPoolOptions::new()
                .max_connections(connections)
                .acquire_timeout(Duration::from_secs(10))
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
                                 PRAGMA foreign_keys = ON;",
                            )
                            .await?;
                        }
                        Ok(())
                    })
                })
        };
        let pool = options(if backend == Backend::Sqlite { 8 } else { 16 })
            .connect(url)
            .await?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&pool).await?,
        }
        let writer = match backend {
            Backend::Sqlite => options(1).connect(url).await?,
            Backend::Postgres => pool.clone(),
        };
        Ok(Self {
            pool,
            writer,
            backend,
        })
    }

    /// Which database it is.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A transaction that may write. SQLite's takes the write lock at once
    /// (`BEGIN IMMEDIATE`): a deferred one that read first could not write
    /// after another writer committed, and would fail rather than wait.
    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.writer.begin().await?,
        })
    }

    /// Stores a blob in the database (PostgreSQL's stores).
    ///
    /// # Errors
    /// A database error.
    pub async fn put_blob(&self, sha256: &str, kind: &str, bytes: &[u8]) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO blobs (sha256, kind, bytes) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(sha256)
        .bind(kind)
        .bind(bytes)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// A blob from the database.
    ///
    /// # Errors
    /// A database error.
    pub async fn blob(&self, sha256: &str, kind: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT bytes FROM blobs WHERE sha256 = $1 AND kind = $2")
                .bind(sha256)
                .bind(kind)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// True when the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Records a token by its sha256.
    ///
    /// # Errors
    /// A database error.
    pub async fn add_token(
        &self,
        sha256: &str,
        grant: &Grant,
        label: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tokens (sha256, role, course, label, created_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(sha256)
        .bind(grant.role.name())
        .bind(&grant.course)
        .bind(label)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Revokes the tokens labelled `label`; how many were.
    ///
    /// # Errors
    /// A database error.
    pub async fn revoke_tokens(&self, label: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE tokens SET revoked_ms = $1 WHERE label = $2 AND revoked_ms IS NULL",
        )
        .bind(now_ms())
        .bind(label)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    /// The grant of the live token whose sha256 is `sha256`.
    ///
    /// # Errors
    /// A database error.
    pub async fn grant(&self, sha256: &str) -> Result<Option<Grant>, StoreError> {
        let row =
            sqlx::query("SELECT role, course FROM tokens WHERE sha256 = $1 AND revoked_ms IS NULL")
                .bind(sha256)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|row| {
            Ok(Grant {
                role: Role::parse(row.get("role"))?,
                course: row.get("course"),
            })
        })
        .transpose()
    }

    /// Registers a version of `course` (creating the course), or finds the
    /// version already registered with the same grader and config.
    /// Returns it, and whether it is new.
    ///
    /// # Errors
    /// A database error.
    pub async fn add_version(
        &self,
        course: &str,
        plugin: &str,
        plugin_sha256: &str,
        config_toml: &str,
        config_sha256: &str,
        grader: &str,
    ) -> Result<(CourseVersion, bool), StoreError> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO courses (name, created_ms, webhook_secret) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(course)
        .bind(now)
        .bind(super::webhooks::new_secret())
        .execute(&mut *tx)
        .await?;
        let existing = sqlx::query(
            "SELECT * FROM course_versions WHERE course = $1 AND plugin_sha256 = $2 AND config_sha256 = $3",
        )
        .bind(course)
        .bind(plugin_sha256)
        .bind(config_sha256)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            tx.commit().await?;
            return Ok((version_of(&row), false));
        }
        let next: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM course_versions WHERE course = $1",
        )
        .bind(course)
        .fetch_one(&mut *tx)
        .await?;
        let row = sqlx::query(
            "INSERT INTO course_versions \
             (course, version, plugin, plugin_sha256, config_toml, config_sha256, grader, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
        )
        .bind(course)
        .bind(next)
        .bind(plugin)
        .bind(plugin_sha256)
        .bind(config_toml)
        .bind(config_sha256)
        .bind(grader)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((version_of(&row), true))
    }

    /// Version `version` of `course`, or its latest when `None`.
    ///
    /// # Errors
    /// A database error.
    pub async fn version(
        &self,
        course: &str,
        version: Option<i64>,
    ) -> Result<Option<CourseVersion>, StoreError> {
        let row =
            match version {
                Some(version) => {
                    sqlx::query("SELECT * FROM course_versions WHERE course = $1 AND version = $2")
                        .bind(course)
                        .bind(version)
                        .fetch_optional(&self.pool)
                        .await?
                }
                None => sqlx::query(
                    "SELECT * FROM course_versions WHERE course = $1 ORDER BY version DESC LIMIT 1",
                )
                .bind(course)
                .fetch_optional(&self.pool)
                .await?,
            };
        Ok(row.as_ref().map(version_of))
    }

    /// Every version of `course`, oldest first.
    ///
    /// # Errors
    /// A database error.
    pub async fn versions(&self, course: &str) -> Result<Vec<CourseVersion>, StoreError> {
        let rows = sqlx::query("SELECT * FROM course_versions WHERE course = $1 ORDER BY version")
            .bind(course)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(version_of).collect())
    }

    /// Every course's name.
    ///
    /// # Errors
    /// A database error.
    pub async fn courses(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT name FROM courses ORDER BY name")
            .fetch_all(&self.pool)
            .await?)
    }

    /// Records that the grading process `owner` runs with `slots` slots,
    /// its sandbox proved safe or not (`healthy`), since `started_ms`.
    ///
    /// # Errors
    /// A database error.
    pub async fn worker_seen(
        &self,
        owner: &str,
        slots: i64,
        healthy: bool,
        started_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO workers (owner, slots, healthy, started_ms, seen_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (owner) DO UPDATE SET \
             slots = excluded.slots, healthy = excluded.healthy, \
             started_ms = excluded.started_ms, seen_ms = excluded.seen_ms",
        )
        .bind(owner)
        .bind(slots)
        .bind(i64::from(healthy))
        .bind(started_ms)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The grading processes seen since `since_ms`, with the submissions
    /// each holds, newest first.
    ///
    /// # Errors
    /// A database error.
    pub async fn workers(&self, since_ms: i64) -> Result<Vec<WorkerRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT w.owner, w.slots, w.healthy, w.started_ms, w.seen_ms, \
             (SELECT COUNT(*) FROM submissions s WHERE s.state = 'running' \
              AND s.lease_owner = w.owner) AS busy \
             FROM workers w WHERE w.seen_ms >= $1 ORDER BY w.seen_ms DESC, w.owner",
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|row| WorkerRow {
                owner: row.get("owner"),
                slots: row.get("slots"),
                busy: row.get("busy"),
                healthy: row.get::<i64, _>("healthy") != 0,
                started_ms: row.get("started_ms"),
                seen_ms: row.get("seen_ms"),
            })
            .collect())
    }

    /// The latest `limit` submissions of `course` (of every course when
    /// `None`), newest first.
    ///
    /// # Errors
    /// A database error.
    pub async fn recent(
        &self,
        course: Option<&str>,
        limit: i64,
    ) -> Result<Vec<SubmissionRow>, StoreError> {
        let rows = match course {
            Some(course) => {
                sqlx::query(&format!(
                    "SELECT {SUBMISSION_COLUMNS} FROM submissions WHERE course = $1 \
                     ORDER BY seq DESC LIMIT $2"
                ))
                .bind(course)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {SUBMISSION_COLUMNS} FROM submissions ORDER BY seq DESC LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(submission_of).collect()
    }

    /// Submissions waiting, in all and for `course`.
    ///
    /// # Errors
    /// A database error.
    pub async fn queued(&self, course: &str) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS total, CAST(COALESCE(SUM(CASE WHEN course = $1 THEN 1 ELSE 0 END), 0) AS BIGINT) AS ours \
             FROM submissions WHERE state IN ('queued', 'running')",
        )
        .bind(course)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.get("total"), row.get("ours")))
    }

    /// Queues an upload for the course's latest version, unless its
    /// idempotency key was used before.
    ///
    /// # Errors
    /// A database error.
    pub async fn enqueue(&self, new: &NewSubmission) -> Result<Enqueued, StoreError> {
        let request = crate::layout::hex(&sha2::Sha256::digest(
            format!(
                "{}\n{}\n{}\n{}",
                new.student,
                new.archive_sha256,
                new.archive_kind,
                new.callback_url.as_deref().unwrap_or_default()
            )
            .as_bytes(),
        ));
        let mut tx = self.begin().await?;
        if let Some(key) = &new.idempotency_key {
            let earlier = sqlx::query(
                "SELECT id, request_sha256 FROM submissions WHERE course = $1 AND idempotency_key = $2",
            )
            .bind(&new.course)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = earlier {
                let id: String = row.get("id");
                let same = row.get::<String, _>("request_sha256") == request;
                return Ok(if same {
                    Enqueued::Repeated(id)
                } else {
                    Enqueued::KeyReused(id)
                });
            }
        }
        let version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM course_versions WHERE course = $1")
                .bind(&new.course)
                .fetch_one(&mut *tx)
                .await?;
        let Some(version) = version else {
            return Ok(Enqueued::NoCourse);
        };
        let now = now_ms();
        sqlx::query(
            "INSERT INTO submissions (id, course, version, student, archive_sha256, archive_kind, \
             idempotency_key, request_sha256, priority, regrade_of, state, created_ms, available_ms, \
             callback_url) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'queued', $11, $12, $13)",
        )
        .bind(&new.id)
        .bind(&new.course)
        .bind(version)
        .bind(&new.student)
        .bind(&new.archive_sha256)
        .bind(&new.archive_kind)
        .bind(&new.idempotency_key)
        .bind(&request)
        .bind(new.priority)
        .bind(&new.regrade_of)
        .bind(now)
        .bind(now)
        .bind(&new.callback_url)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Enqueued::New(new.id.clone()))
    }

    /// The submission `id`.
    ///
    /// # Errors
    /// A database error.
    pub async fn submission(&self, id: &str) -> Result<Option<SubmissionRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SUBMISSION_COLUMNS} FROM submissions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(submission_of).transpose()
    }

    /// How many submissions go before waiting `id` (0: it is next).
    ///
    /// # Errors
    /// A database error.
    pub async fn queue_position(&self, id: &str) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM submissions o, submissions s \
             WHERE s.id = $1 AND s.state = 'queued' AND o.state = 'queued' \
             AND (o.priority < s.priority OR (o.priority = s.priority AND o.seq < s.seq))",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The result recorded for `id`.
    ///
    /// # Errors
    /// A database error, or a result that cannot be read.
    pub async fn result(&self, id: &str) -> Result<Option<SubmissionResult>, StoreError> {
        let text: Option<Option<String>> =
            sqlx::query_scalar("SELECT result_json FROM submissions WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        text.flatten()
            .map(|text| {
                serde_json::from_str(&text)
                    .map_err(|e| StoreError::Corrupt(format!("result of {id}: {e}")))
            })
            .transpose()
    }

    /// The latest submission of each student of `course` that has a result,
    /// with it.
    ///
    /// # Errors
    /// A database error, or a result that cannot be read.
    pub async fn latest_results(
        &self,
        course: &str,
    ) -> Result<Vec<(SubmissionRow, SubmissionResult)>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM submissions s WHERE course = $1 AND state = 'done' AND seq = \
             (SELECT MAX(seq) FROM submissions o WHERE o.course = s.course \
              AND o.student = s.student AND o.state = 'done') ORDER BY student",
        )
        .bind(course)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let text: String = row.get("result_json");
                let result = serde_json::from_str(&text)
                    .map_err(|e| StoreError::Corrupt(format!("result: {e}")))?;
                Ok((submission_of(row)?, result))
            })
            .collect()
    }

    /// Withdraws `id` unless it has a result; true when it was withdrawn.
    ///
    /// # Errors
    /// A database error.
    pub async fn cancel(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE submissions SET state = 'cancelled', finished_ms = $1, lease_owner = NULL, \
             lease_until_ms = NULL WHERE id = $2 AND state IN ('queued', 'running')",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes the next submission for worker `owner`: the lowest priority
    /// first, then the course that waited longest, then the oldest upload;
    /// a running one whose lease ran out counts as waiting. A submission
    /// that has had all its attempts (its workers lost) is given its infra
    /// error here instead of another attempt.
    ///
    /// # Errors
    /// A database error.
    pub async fn claim(&self, owner: &str) -> Result<Option<Claim>, StoreError> {
        loop {
            let mut tx = self.begin().await?;
            let now = now_ms();
            // PostgreSQL: two workers never wait on, nor take, one row.
            let lock = match self.backend {
                Backend::Sqlite => "",
                Backend::Postgres => " FOR UPDATE OF s SKIP LOCKED",
            };
            let sql = format!(
                "UPDATE submissions SET state = 'running', lease_owner = $1, lease_until_ms = $2, \
                 fence = fence + 1, attempts = attempts + 1 \
                 WHERE seq = (SELECT s.seq FROM submissions s JOIN courses c ON c.name = s.course \
                   WHERE (s.state = 'queued' AND s.available_ms <= $3) \
                      OR (s.state = 'running' AND s.lease_until_ms < $3) \
                   ORDER BY s.priority, c.last_claim_ms, s.seq LIMIT 1{lock}) \
                 AND (state = 'queued' OR (state = 'running' AND lease_until_ms < $3)) \
                 RETURNING id, course, version, student, archive_sha256, archive_kind, fence, \
                   attempts, retries_json"
            );
            let row = sqlx::query(&sql)
                .bind(owner)
                .bind(now + ms(LEASE))
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                tx.commit().await?;
                return Ok(None);
            };
            let course: String = row.get("course");
            sqlx::query("UPDATE courses SET last_claim_ms = $1 WHERE name = $2")
                .bind(now)
                .bind(&course)
                .execute(&mut *tx)
                .await?;
            let retries: Vec<Retry> = serde_json::from_str(row.get("retries_json"))
                .map_err(|e| StoreError::Corrupt(format!("retries: {e}")))?;
            let mut claim = Claim {
                id: row.get("id"),
                course,
                version: row.get("version"),
                student: row.get("student"),
                archive_sha256: row.get("archive_sha256"),
                archive_kind: row.get("archive_kind"),
                fence: row.get("fence"),
                attempts: row.get("attempts"),
                retries,
            };
            // Claims count attempts; one that left neither a result nor a
            // retry record lost its worker.
            while i64::try_from(claim.retries.len()).unwrap_or(i64::MAX) < claim.attempts - 1 {
                claim.retries.push(Retry {
                    attempt: u32::try_from(claim.retries.len() + 1).unwrap_or(u32::MAX),
                    reason: "its worker stopped before recording a result".into(),
                });
            }
            if claim.attempts > MAX_SERVICE_ATTEMPTS {
                let mut result = SubmissionResult::failed(
                    &claim.student,
                    Status::InfraError,
                    format!(
                        "{MAX_SERVICE_ATTEMPTS} attempts ended without a result (their workers \
                         stopped or the host failed); nothing of the submission's was scored"
                    ),
                );
                result.retries = claim.retries.clone();
                finish_in(&mut tx, &claim, &result).await?;
                tx.commit().await?;
                continue;
            }
            tx.commit().await?;
            return Ok(Some(claim));
        }
    }

    /// Ends at once the leases of workers that `gone` says stopped (a
    /// killed `agh serve` on this host, restarted): their submissions are
    /// taken again without waiting for the leases to run out. How many.
    ///
    /// # Errors
    /// A database error.
    pub async fn expire_leases_of(&self, gone: impl Fn(&str) -> bool) -> Result<u64, StoreError> {
        let owners: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT lease_owner FROM submissions WHERE state = 'running' AND lease_owner IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut expired = 0;
        for owner in owners.iter().filter(|o| gone(o)) {
            expired += sqlx::query(
                "UPDATE submissions SET lease_until_ms = 0 WHERE state = 'running' AND lease_owner = $1",
            )
            .bind(owner)
            .execute(&self.writer)
            .await?
            .rows_affected();
        }
        Ok(expired)
    }

    /// Extends `claim`'s lease; false when it is no longer the worker's
    /// (taken over, or cancelled).
    ///
    /// # Errors
    /// A database error.
    pub async fn heartbeat(&self, claim: &Claim) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE submissions SET lease_until_ms = $1 WHERE id = $2 AND fence = $3 AND state = 'running'",
        )
        .bind(now_ms() + ms(LEASE))
        .bind(&claim.id)
        .bind(claim.fence)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records `result` as `claim`'s one result; false when the claim was
    /// lost first (nothing is written).
    ///
    /// # Errors
    /// A database error.
    pub async fn finish(
        &self,
        claim: &Claim,
        result: &SubmissionResult,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let recorded = finish_in(&mut tx, claim, result).await?;
        tx.commit().await?;
        Ok(recorded)
    }

    /// Puts `claim` back in the queue after an infra error, not before
    /// `after`; false when the claim was lost first.
    ///
    /// # Errors
    /// A database error.
    pub async fn retry_later(
        &self,
        claim: &Claim,
        reason: &str,
        after: Duration,
    ) -> Result<bool, StoreError> {
        let mut retries = claim.retries.clone();
        retries.push(Retry {
            attempt: u32::try_from(claim.attempts).unwrap_or(u32::MAX),
            reason: reason.to_string(),
        });
        let done = sqlx::query(
            "UPDATE submissions SET state = 'queued', available_ms = $1, lease_owner = NULL, \
             lease_until_ms = NULL, retries_json = $2 WHERE id = $3 AND fence = $4 AND state = 'running'",
        )
        .bind(now_ms() + ms(after))
        .bind(serde_json::to_string(&retries).unwrap_or_else(|_| "[]".into()))
        .bind(&claim.id)
        .bind(claim.fence)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The signing secret of `course`'s callbacks.
    ///
    /// # Errors
    /// A database error.
    pub async fn webhook_secret(&self, course: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT webhook_secret FROM courses WHERE name = $1")
                .bind(course)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Takes the next callback due, holding it for `hold` (another API
    /// takes it after that if this one stops).
    ///
    /// # Errors
    /// A database error.
    pub async fn claim_delivery(&self, hold: Duration) -> Result<Option<Delivery>, StoreError> {
        let lock = match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let now = now_ms();
        let sql = format!(
            "UPDATE deliveries SET next_ms = $1, attempts = attempts + 1 WHERE seq = \
             (SELECT seq FROM deliveries WHERE delivered_ms IS NULL AND failed_ms IS NULL \
              AND next_ms <= $2 ORDER BY next_ms LIMIT 1{lock}) AND next_ms <= $2 \
             RETURNING seq, submission_id, url, attempts"
        );
        let row = sqlx::query(&sql)
            .bind(now + ms(hold))
            .bind(now)
            .fetch_optional(&self.writer)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let submission_id: String = row.get("submission_id");
        let submission = self
            .submission(&submission_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("delivery for {submission_id}")))?;
        Ok(Some(Delivery {
            seq: row.get("seq"),
            url: row.get("url"),
            attempts: row.get("attempts"),
            submission,
        }))
    }

    /// Records how a callback attempt went: delivered, tried again at
    /// `retry_at`, or (`None`) given up.
    ///
    /// # Errors
    /// A database error.
    pub async fn delivery_outcome(
        &self,
        delivery: &Delivery,
        outcome: Result<(), (String, Option<Duration>)>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let query = match &outcome {
            Ok(()) => sqlx::query("UPDATE deliveries SET delivered_ms = $1 WHERE seq = $2")
                .bind(now)
                .bind(delivery.seq),
            Err((why, Some(after))) => {
                sqlx::query("UPDATE deliveries SET next_ms = $1, last_error = $2 WHERE seq = $3")
                    .bind(now + ms(*after))
                    .bind(why.clone())
                    .bind(delivery.seq)
            }
            Err((why, None)) => {
                sqlx::query("UPDATE deliveries SET failed_ms = $1, last_error = $2 WHERE seq = $3")
                    .bind(now)
                    .bind(why.clone())
                    .bind(delivery.seq)
            }
        };
        query.execute(&self.writer).await?;
        Ok(())
    }

    /// The queue's counts.
    ///
    /// # Errors
    /// A database error.
    pub async fn stats(&self) -> Result<QueueStats, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(CASE WHEN state = 'queued' THEN 1 ELSE 0 END), 0) AS BIGINT) AS queued, \
             CAST(COALESCE(SUM(CASE WHEN state = 'running' THEN 1 ELSE 0 END), 0) AS BIGINT) AS running, \
             MIN(CASE WHEN state = 'queued' THEN created_ms END) AS oldest FROM submissions",
        )
        .fetch_one(&self.pool)
        .await?;
        let oldest: Option<i64> = row.get("oldest");
        let done = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM submissions WHERE state = 'done' GROUP BY status ORDER BY status",
        )
        .fetch_all(&self.pool)
        .await?;
        #[allow(clippy::cast_precision_loss)]
        let oldest_queued_seconds = oldest.map_or(0.0, |t| (now_ms() - t).max(0) as f64 / 1000.0);
        Ok(QueueStats {
            queued: row.get("queued"),
            running: row.get("running"),
            oldest_queued_seconds,
            done_by_status: done
                .iter()
                .map(|r| {
                    (
                        r.get::<Option<String>, _>("status").unwrap_or_default(),
                        r.get("n"),
                    )
                })
                .collect(),
        })
    }
}

async fn finish_in(
    tx: &mut AnyConnection,
    claim: &Claim,
    result: &SubmissionResult,
) -> Result<bool, StoreError> {
    let status = serde_json::to_value(result.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let json = serde_json::to_string(result)
        .map_err(|e| StoreError::Corrupt(format!("result of {}: {e}", claim.id)))?;
    let done = sqlx::query(
        "UPDATE submissions SET state = 'done', status = $1, score = $2, max_score = $3, \
         result_json = $4, finished_ms = $5, lease_owner = NULL, lease_until_ms = NULL \
         WHERE id = $6 AND fence = $7 AND state = 'running'",
    )
    .bind(status)
    .bind(result.score)
    .bind(result.max_score)
    .bind(json)
    .bind(now_ms())
    .bind(&claim.id)
    .bind(claim.fence)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO deliveries (submission_id, url, next_ms) \
         SELECT id, callback_url, $1 FROM submissions WHERE id = $2 AND callback_url IS NOT NULL",
    )
    .bind(now_ms())
    .bind(&claim.id)
    .execute(&mut *tx)
    .await?;
    Ok(true)
}

fn version_of(row: &AnyRow) -> CourseVersion {
    CourseVersion {
        course: row.get("course"),
        version: row.get("version"),
        plugin: row.get("plugin"),
        plugin_sha256: row.get("plugin_sha256"),
        config_toml: row.get("config_toml"),
        config_sha256: row.get("config_sha256"),
        grader: row.get("grader"),
        created_ms: row.get("created_ms"),
    }
}

/// The columns [`submission_of`] reads (a state is asked for often; its
/// result, which can be large, is read only where it is wanted).
const SUBMISSION_COLUMNS: &str = "id, course, version, student, state, attempts, status, score, \
    max_score, regrade_of, created_ms, finished_ms, archive_sha256, archive_kind, priority";

fn submission_of(row: &AnyRow) -> Result<SubmissionRow, StoreError> {
    Ok(SubmissionRow {
        id: row.get("id"),
        course: row.get("course"),
        version: row.get("version"),
        student: row.get("student"),
        state: State::parse(row.get("state"))?,
        attempts: row.get("attempts"),
        status: row.get("status"),
        score: row.get("score"),
        max_score: row.get("max_score"),
        regrade_of: row.get("regrade_of"),
        created_ms: row.get("created_ms"),
        finished_ms: row.get("finished_ms"),
        archive_sha256: row.get("archive_sha256"),
        archive_kind: row.get("archive_kind"),
        priority: row.get("priority"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store_with_courses(courses: &[&str]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).await.expect("open");
        for course in courses {
            store
                .add_version(course, "builtin:io-cases", "p", "", "c", "io-cases 1")
                .await
                .expect("version");
        }
        (dir, store)
    }

    fn upload(course: &str, student: &str, priority: i64) -> NewSubmission {
        NewSubmission {
            id: super::super::new_id("sub"),
            course: course.into(),
            student: student.into(),
            archive_sha256: format!("{student:0>64}"),
            archive_kind: "tar".into(),
            idempotency_key: None,
            priority,
            regrade_of: None,
            callback_url: None,
        }
    }

    /// Fifty uploads at once are fifty submissions: none is refused
    /// because another writer committed first (a deferred SQLite
    /// transaction that read before writing was).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn fifty_uploads_at_once_are_all_queued() {
        let (_dir, store) = store_with_courses(&["io"]).await;
        let uploads = (0..50).map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.enqueue(&upload("io", &format!("s{i}"), 0)).await })
        });
        for upload in futures_util::future::join_all(uploads).await {
            let enqueued = upload.expect("join").expect("enqueue");
            assert!(matches!(enqueued, Enqueued::New(_)), "{enqueued:?}");
        }
        assert_eq!(store.stats().await.expect("stats").queued, 50);
    }

    /// A worker whose lease was taken over records nothing; the one that
    /// took it over records the one result, which names the lost attempt.
    #[tokio::test]
    async fn a_claim_taken_over_writes_nothing() {
        let (_dir, store) = store_with_courses(&["io"]).await;
        store
            .enqueue(&upload("io", "alice", 0))
            .await
            .expect("enqueue");
        let first = store
            .claim("host/1/1")
            .await
            .expect("claim")
            .expect("a claim");
        assert!(
            store.claim("host/2/2").await.expect("claim").is_none(),
            "leased"
        );
        assert_eq!(
            store
                .expire_leases_of(|owner| owner == "host/1/1")
                .await
                .expect("expire"),
            1
        );
        let second = store
            .claim("host/2/2")
            .await
            .expect("claim")
            .expect("taken over");
        assert_eq!((second.fence, second.attempts), (first.fence + 1, 2));
        assert_eq!(second.retries.len(), 1, "{:?}", second.retries);
        let graded = SubmissionResult::failed("alice", Status::Graded, String::new());
        assert!(!store.heartbeat(&first).await.expect("heartbeat"));
        assert!(
            !store.finish(&first, &graded).await.expect("finish"),
            "the old fence"
        );
        assert!(store.finish(&second, &graded).await.expect("finish"));
        assert!(
            !store.finish(&second, &graded).await.expect("finish"),
            "one result"
        );
        let stats = store.stats().await.expect("stats");
        assert_eq!(stats.done_by_status, vec![("graded".to_string(), 1)]);
    }

    /// Students go before regrades; among equals, the course that waited
    /// longest goes first, so one course's many uploads do not hold up
    /// another's one.
    #[tokio::test]
    async fn claims_take_priority_then_the_course_that_waited_longest() {
        let (_dir, store) = store_with_courses(&["a", "b"]).await;
        store
            .enqueue(&upload("a", "regrade", 1))
            .await
            .expect("enqueue");
        for student in ["a1", "a2", "a3"] {
            store
                .enqueue(&upload("a", student, 0))
                .await
                .expect("enqueue");
        }
        store.enqueue(&upload("b", "b1", 0)).await.expect("enqueue");
        let mut order = Vec::new();
        while let Some(claim) = store.claim("w/1/1").await.expect("claim") {
            order.push(claim.student);
            // Claims a millisecond apart, as real ones are.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(order, ["a1", "b1", "a2", "a3", "regrade"]);
    }
}
