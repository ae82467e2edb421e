-- The service's store: courses and their versions, bearer tokens, and the
-- submissions queue, each row one submission from upload to its result.
-- Times are Unix milliseconds.

CREATE TABLE courses (
    name TEXT PRIMARY KEY,
    created_ms BIGINT NOT NULL,
    -- When a worker last took one of its submissions: the queue serves the
    -- course that waited longest first, so one course cannot starve another.
    last_claim_ms BIGINT NOT NULL DEFAULT 0,
    -- The key result callbacks of the course are signed with (Standard
    -- Webhooks: `whsec_` and base64), made when the course is registered.
    webhook_secret TEXT NOT NULL
);

-- A grader and its policy as registered; earlier versions stay, and every
-- submission names the version that grades it.
CREATE TABLE course_versions (
    course TEXT NOT NULL REFERENCES courses (name),
    version BIGINT NOT NULL,
    -- `builtin:NAME`, or the sha256 of the component in the blob store.
    plugin TEXT NOT NULL,
    plugin_sha256 TEXT NOT NULL,
    config_toml TEXT NOT NULL,
    config_sha256 TEXT NOT NULL,
    grader TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (course, version),
    UNIQUE (course, plugin_sha256, config_sha256)
);

-- Bearer tokens, by the sha256 of the token: the token itself is shown once.
CREATE TABLE tokens (
    sha256 TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('admin', 'staff', 'submit')),
    course TEXT,
    label TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);

CREATE TABLE submissions (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    course TEXT NOT NULL REFERENCES courses (name),
    version BIGINT NOT NULL,
    student TEXT NOT NULL,
    archive_sha256 TEXT NOT NULL,
    archive_kind TEXT NOT NULL,
    idempotency_key TEXT,
    -- What the upload held (student and archive), to tell a retried
    -- request from a different one under the same key.
    request_sha256 TEXT NOT NULL,
    -- 0 for students, 1 for regrades: lower goes first.
    priority BIGINT NOT NULL,
    regrade_of TEXT,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'cancelled')),
    created_ms BIGINT NOT NULL,
    -- Not taken before this time (a retry's back-off).
    available_ms BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until_ms BIGINT,
    -- Raised by every claim; a worker's writes carry the fence it claimed
    -- with, so a worker whose lease was taken over writes nothing.
    fence BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    retries_json TEXT NOT NULL DEFAULT '[]',
    status TEXT,
    score DOUBLE PRECISION,
    max_score DOUBLE PRECISION,
    result_json TEXT,
    finished_ms BIGINT,
    -- Where the result is announced, on the operator's allow-list.
    callback_url TEXT,
    UNIQUE (course, idempotency_key)
);

-- One callback per result, written in the transaction that records the
-- result, delivered (and retried) by the API.
CREATE TABLE deliveries (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    submission_id TEXT NOT NULL UNIQUE REFERENCES submissions (id),
    url TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    -- Not tried before this time: a back-off, or another API's claim.
    next_ms BIGINT NOT NULL,
    delivered_ms BIGINT,
    failed_ms BIGINT,
    last_error TEXT
);

CREATE INDEX submissions_by_state ON submissions (state, priority, available_ms);
CREATE INDEX submissions_by_course ON submissions (course, student);

-- Uploaded components and archives, by sha256: in the database, so every
-- API replica and worker sees each upload the moment its row commits,
-- with nothing else to run or back up.
CREATE TABLE blobs (
    sha256 TEXT NOT NULL,
    kind TEXT NOT NULL,
    bytes BYTEA NOT NULL,
    PRIMARY KEY (sha256, kind)
);
