-- The grading processes (`agh serve`, `agh worker`) as they last reported
-- themselves, for the staff pages: a worker that stops reporting shows as
-- not seen since then.
CREATE TABLE workers (
    owner TEXT PRIMARY KEY,
    slots INTEGER NOT NULL,
    -- 1 while its sandbox is proved safe (it takes work), else 0.
    healthy INTEGER NOT NULL,
    started_ms INTEGER NOT NULL,
    seen_ms INTEGER NOT NULL
);
