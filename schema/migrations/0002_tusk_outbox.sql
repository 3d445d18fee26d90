-- 0002_tusk_outbox: tusk's transactional outbox. A write that creates or deletes a status,
-- or changes a follow/block/mute, inserts one row here in the SAME transaction; the fanout
-- relay moves unsent rows (oldest id first) to a Redis stream and then sets sent_at. So a
-- committed write is never without its fan-out job, even if Redis is down at the time.
-- kind: 'status_created', 'status_deleted', 'follow', 'unfollow', 'block', 'mute', ...
-- (open set, owned by fanout/); payload: the job's arguments as JSON.
CREATE TABLE tusk_outbox (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind <> ''),
    payload jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz
);
-- the relay's scan: "WHERE sent_at IS NULL ORDER BY id LIMIT n" reads only unsent rows
CREATE INDEX index_tusk_outbox_unsent ON tusk_outbox (id) WHERE sent_at IS NULL;
