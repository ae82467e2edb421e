//! `agh serve`, `agh token` and `agh course`: the service, its tokens, and
//! registering a course with a running service.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};

use super::Outcome;
use agh::service::{self, Limits, ServeOptions, ServeRole, store::Grant, store::Role};

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(super) enum LogFormat {
    /// Lines for a terminal.
    #[default]
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}

/// `agh serve --role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(super) enum RoleOfServe {
    /// The API and grading slots in one process.
    #[default]
    All,
    /// The API alone (stateless; run `agh worker` on each grading node).
    Api,
}

#[derive(Debug, Args)]
pub(super) struct StoreArgs {
    /// The data folder: with SQLite the store itself (agh.sqlite) and
    /// uploads; with --store, this node's copies and work. Made when
    /// missing; must be private to the user running agh.
    #[arg(long)]
    data: PathBuf,
    /// A PostgreSQL store shared by API replicas and workers
    /// (postgres://USER@HOST/DB); default: SQLite in --data.
    #[arg(long, env = "AGH_STORE", hide_env_values = true)]
    store: Option<String>,
}

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// What this process does.
    #[arg(long, value_enum, default_value_t)]
    role: RoleOfServe,
    /// Where to listen. Loopback unless you put a proxy with TLS in front.
    #[arg(long, default_value = "127.0.0.1:7878")]
    listen: SocketAddr,
    /// Grading slots in this process (default: as `agh grade -j`).
    #[arg(short, long)]
    jobs: Option<usize>,
    /// Submissions waiting in all before uploads are refused with 503.
    #[arg(long, default_value_t = service::DEFAULT_MAX_QUEUED)]
    max_queued: i64,
    /// Submissions waiting for one course before its uploads get 429.
    #[arg(long, default_value_t = service::DEFAULT_MAX_QUEUED_PER_COURSE)]
    max_queued_per_course: i64,
    /// Images the health check proves (default: the images scripts/setup builds).
    #[arg(long = "image")]
    images: Vec<String>,
    /// A URL prefix result callbacks may go to (`callback_url` of an
    /// upload), e.g. https://lms.example.edu/agh/; none: no callbacks.
    #[arg(long = "callback-allow")]
    callback_allow: Vec<String>,
    /// How to write logs.
    #[arg(long, value_enum, default_value_t)]
    pub(super) log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub(super) enum TokenCommand {
    /// Make a bearer token and print it (the only time it is shown).
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// What it may do: admin (everything), staff (a course's versions,
        /// results, regrades, exports) or submit (an LMS's uploads).
        #[arg(long, value_enum)]
        role: RoleArg,
        /// The course it is for (not for admin).
        #[arg(long)]
        course: Option<String>,
        /// A name to know and revoke it by.
        #[arg(long)]
        label: String,
    },
    /// Revoke every token with a label.
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        /// The label given at creation.
        #[arg(long)]
        label: String,
    },
}

/// `--role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum RoleArg {
    /// Everything.
    Admin,
    /// One course's staff.
    Staff,
    /// Uploads to one course.
    Submit,
}

impl From<RoleArg> for Role {
    fn from(arg: RoleArg) -> Self {
        match arg {
            RoleArg::Admin => Role::Admin,
            RoleArg::Staff => Role::Staff,
            RoleArg::Submit => Role::Submit,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(super) enum CourseCommand {
    /// Register a course (or a new version of one) with a running service.
    Add {
        /// The service, e.g. http://127.0.0.1:7878.
        #[arg(long)]
        url: String,
        /// An admin token, or the course's staff token (default: $AGH_TOKEN).
        #[arg(long, env = "AGH_TOKEN", hide_env_values = true)]
        token: String,
        /// The grader component, or builtin:NAME.
        #[arg(long)]
        plugin: PathBuf,
        /// The course's agh.toml.
        #[arg(long)]
        config: PathBuf,
        /// The course's name.
        name: String,
    },
}

#[derive(Debug, Args)]
pub(super) struct WorkerArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Where to serve /health/, /readyz and /metrics.
    #[arg(long, default_value = "127.0.0.1:7879")]
    listen: SocketAddr,
    /// Grading slots on this node (default: as `agh grade -j`).
    #[arg(short, long)]
    jobs: Option<usize>,
    /// Images the health check proves (default: the images scripts/setup builds).
    #[arg(long = "image")]
    images: Vec<String>,
    /// How to write logs.
    #[arg(long, value_enum, default_value_t)]
    pub(super) log_format: LogFormat,
}

pub(super) async fn worker_command(args: WorkerArgs) -> Outcome {
    let options = ServeOptions {
        data: args.store.data,
        store: args.store.store,
        role: ServeRole::Worker,
        listen: args.listen,
        jobs: args.jobs.unwrap_or_else(agh::batch::default_jobs),
        limits: Limits::default(),
        images: images_or_default(args.images),
        callback_allow: Vec::new(),
    };
    run_service(options).await
}

fn images_or_default(images: Vec<String>) -> Vec<String> {
    if images.is_empty() {
        agh::doctor::DEFAULT_IMAGES.map(String::from).to_vec()
    } else {
        images
    }
}

pub(super) async fn serve_command(args: ServeArgs) -> Outcome {
    let options = ServeOptions {
        data: args.store.data,
        store: args.store.store,
        role: match args.role {
            RoleOfServe::All => ServeRole::All,
            RoleOfServe::Api => ServeRole::Api,
        },
        listen: args.listen,
        jobs: args.jobs.unwrap_or_else(agh::batch::default_jobs),
        limits: Limits {
            max_queued: args.max_queued,
            max_queued_per_course: args.max_queued_per_course,
        },
        images: images_or_default(args.images),
        callback_allow: args.callback_allow,
    };
    run_service(options).await
}

async fn run_service(options: ServeOptions) -> Outcome {
    let jobs = if options.role == ServeRole::Api {
        0
    } else {
        options.jobs.max(1)
    };
    let served = service::serve(options, |addr| {
        // Tests and scripts read this line for the port.
        println!("agh serve: listening on http://{addr} with {jobs} grading slots");
        if !addr.ip().is_loopback() {
            eprintln!(
                "agh serve: WARNING: listening beyond loopback without TLS; put a TLS proxy in front"
            );
        }
    })
    .await;
    match served {
        Ok(()) => Outcome::Success,
        Err(err) => {
            eprintln!("agh serve: {err}");
            Outcome::from(err.blame())
        }
    }
}

pub(super) async fn token_command(command: TokenCommand) -> Outcome {
    let (TokenCommand::Create { store, .. } | TokenCommand::Revoke { store, .. }) = &command;
    let store = match service::open_store(&store.data, store.store.as_deref()).await {
        Ok((store, _)) => store,
        Err(err) => {
            eprintln!("agh token: {err}");
            return Outcome::from(err.blame());
        }
    };
    match command {
        TokenCommand::Create {
            role,
            course,
            label,
            ..
        } => {
            let role = Role::from(role);
            if (role == Role::Admin) != course.is_none() {
                eprintln!(
                    "agh token: an admin token is for every course (give no --course); staff and submit tokens need --course"
                );
                return Outcome::Usage;
            }
            match service::create_token(&store, &Grant { role, course }, &label).await {
                Ok(token) => {
                    println!("{token}");
                    Outcome::Success
                }
                Err(err) => {
                    eprintln!("agh token: {err}");
                    Outcome::Infra
                }
            }
        }
        TokenCommand::Revoke { label, .. } => match store.revoke_tokens(&label).await {
            Ok(0) => {
                eprintln!("agh token: no live token is labelled {label:?}");
                Outcome::Usage
            }
            Ok(n) => {
                println!("revoked {n} token(s) labelled {label:?}");
                Outcome::Success
            }
            Err(err) => {
                eprintln!("agh token: {err}");
                Outcome::Infra
            }
        },
    }
}

pub(super) async fn course_command(command: CourseCommand) -> Outcome {
    let CourseCommand::Add {
        url,
        token,
        plugin,
        config,
        name,
    } = command;
    let text = match config_for_service(&config) {
        Ok(text) => text,
        Err(why) => {
            eprintln!("agh course add: {why}");
            return Outcome::Usage;
        }
    };
    let mut form = reqwest::multipart::Form::new()
        .text("name", name.clone())
        .text("config", text);
    form = match plugin.to_str().and_then(|p| p.strip_prefix("builtin:")) {
        Some(builtin) => form.text("builtin", builtin.to_string()),
        None => match std::fs::read(&plugin) {
            Ok(bytes) => form.part(
                "plugin",
                reqwest::multipart::Part::bytes(bytes).file_name("grader.wasm"),
            ),
            Err(err) => {
                eprintln!("agh course add: {}: {err}", plugin.display());
                return Outcome::Usage;
            }
        },
    };
    let endpoint = format!("{}/v1/courses", url.trim_end_matches('/'));
    let sent = reqwest::Client::new()
        .post(&endpoint)
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(err) => {
            eprintln!(
                "agh course add: cannot reach {endpoint}: {err}; is `agh serve` running there?"
            );
            return Outcome::Infra;
        }
    };
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if status.is_success() {
        let version = &body["version"];
        println!(
            "course {name} version {} ({}, grader sha256 {}){}",
            version["version"],
            version["grader"].as_str().unwrap_or_default(),
            version["plugin_sha256"].as_str().unwrap_or_default(),
            if body["new"] == true {
                ""
            } else {
                ": already registered"
            }
        );
        if let Some(secret) = body["webhook_secret"].as_str() {
            println!("result callbacks are signed with {secret}");
        }
        Outcome::Success
    } else {
        eprintln!(
            "agh course add: {status}: {}",
            body["error"].as_str().unwrap_or("no reason given")
        );
        match status.as_u16() {
            401 | 403 | 400 | 404 | 413 | 415 | 422 => Outcome::Usage,
            _ => Outcome::Infra,
        }
    }
}

/// The config's text for a service: checked as `agh grade` checks it, its
/// relative folders made absolute (the service has no folder to resolve
/// them against).
fn config_for_service(path: &Path) -> Result<String, String> {
    agh::config::Config::load(path).map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| e.to_string())?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let absolute = |relative: &str| -> Result<String, String> {
        let joined = base.join(relative);
        joined
            .canonicalize()
            .map(|p| p.display().to_string())
            .map_err(|e| format!("{}: {e}", joined.display()))
    };
    if let Some(toml::Value::String(reference)) = table.get_mut("reference")
        && Path::new(reference.as_str()).is_relative()
    {
        *reference = absolute(reference.as_str())?;
    }
    if let Some(toml::Value::Table(sources)) = table.get_mut("sources") {
        for (_, source) in sources.iter_mut() {
            if let Some(toml::Value::String(local)) = source.get_mut("local")
                && Path::new(local.as_str()).is_relative()
            {
                *local = absolute(local.as_str())?;
            }
        }
    }
    toml::to_string(&table).map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub(super) struct ProbeArgs {
    /// The service, e.g. http://127.0.0.1:7878.
    #[arg(long)]
    url: String,
    /// A token (default: $AGH_TOKEN); one that may submit to --course for
    /// the probes that upload.
    #[arg(long, env = "AGH_TOKEN", hide_env_values = true)]
    token: String,
    /// A course to upload probe submissions to (as the student agh-probe);
    /// without it only the probes that upload nothing run.
    #[arg(long)]
    course: Option<String>,
    /// Probe the sandbox too: registers the course agh-probe-sandbox with
    /// agh's probe grader (needs an admin token, or that course's staff)
    /// and submits to it like a student.
    #[arg(long)]
    sandbox: bool,
    /// Print the findings as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) async fn probe_command(args: ProbeArgs) -> Outcome {
    let target = service::probe::Target {
        url: args.url,
        token: args.token,
        course: args.course,
        sandbox: args.sandbox,
    };
    let findings = service::probe::run(&target).await;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&findings).unwrap_or_default()
        );
    } else {
        for finding in &findings {
            let mark = if finding.ok { "ok  " } else { "FAIL" };
            println!("{mark} {:<48} {}", finding.name, finding.detail);
        }
    }
    let failed = findings.iter().filter(|f| !f.ok).count();
    if failed == 0 {
        if !args.json {
            println!("all {} probes passed", findings.len());
        }
        Outcome::Success
    } else {
        eprintln!("agh probe: {failed} of {} probes failed", findings.len());
        Outcome::Unhealthy
    }
}
