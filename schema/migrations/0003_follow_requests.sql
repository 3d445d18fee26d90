-- 0003_follow_requests: Mastodon's follow_requests. Following a locked account (or being
-- silenced) creates a request instead of a follow; the target authorizes it (the follow is
-- then created like any other, with the request's options) or rejects it. Columns, types,
-- defaults and the unique index are Mastodon's (db/schema.rb), foreign keys with its
-- ON DELETE rules, including list_accounts.follow_request_id, which 0001 left without one.
CREATE TABLE follow_requests (
    id bigserial PRIMARY KEY,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL,
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    target_account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    show_reblogs boolean NOT NULL DEFAULT true,
    uri character varying,
    notify boolean NOT NULL DEFAULT false,
    languages character varying[]
);
CREATE UNIQUE INDEX index_follow_requests_on_account_id_and_target_account_id
    ON follow_requests (account_id, target_account_id);
-- tusk's: GET /api/v1/follow_requests pages through one target's requests by id
CREATE INDEX index_follow_requests_on_target_account_id_and_id
    ON follow_requests (target_account_id, id);

ALTER TABLE list_accounts
    ADD FOREIGN KEY (follow_request_id) REFERENCES follow_requests (id) ON DELETE CASCADE;
CREATE INDEX index_list_accounts_on_follow_request_id ON list_accounts (follow_request_id)
    WHERE follow_request_id IS NOT NULL;
