-- 0003_lane_heads: Lease finds the ready lanes through two small indexes
-- instead of grouping every unfinished job by lane (tens of milliseconds
-- per call, inside the single writer, with 100,000 events waiting out a
-- BonyChat outage).
--
-- jobs.head is 1 on the first unfinished (pending or leased) job of each
-- lane, the only job Lease may start a lane with, and 0 on every other
-- job. The writes that insert, finish or revive jobs keep it so.

ALTER TABLE jobs ADD COLUMN head INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET head = 1 WHERE id IN (
    SELECT MIN(id) FROM jobs WHERE state IN ('pending', 'leased')
    GROUP BY queue, channel_id, contact_id);

-- Lane heads waiting for their time, and lane heads whose lease runs out.
CREATE INDEX jobs_ready ON jobs (queue, next_at) WHERE head = 1 AND state = 'pending';
CREATE INDEX jobs_expiring ON jobs (queue, lease_until) WHERE head = 1 AND state = 'leased';
