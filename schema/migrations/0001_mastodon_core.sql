-- 0001_mastodon_core: the subset of Mastodon's tables that timelines, fan-out and the REST
-- subset need, with Mastodon's table names, column names, types, defaults and index names
-- (db/schema.rb). Rails conventions kept: "string" is character varying, "datetime" is
-- timestamp WITHOUT time zone holding UTC, plain ids are bigserial (<table>_id_seq).
-- Columns Mastodon has but tusk never reads are left out; adding them later is harmless.

-- timestamp_id(table_name): Snowflake-style ids, the same bigint layout as Mastodon's
--
--    63                                16 15              0
--   +------------------------------------+----------------+
--   |  milliseconds since the Unix epoch |  sequence tail |
--   +------------------------------------+----------------+
--
-- so (id >> 16) is the creation time in ms and ids sort by time. The 16-bit tail is
-- (first 16 bits of md5(table_name || secret || time_part)) + nextval('<table>_id_seq'),
-- masked to 16 bits: two rows inserted in the same millisecond still differ, while the
-- per-table, per-millisecond hash base hides the sequence value (so ids do not reveal row
-- counts). The secret is drawn once, when this migration runs, and baked into the body.
-- Unlike Mastodon (now(), the transaction start), the time part is clock_timestamp(), so a
-- row inserted late in a long transaction still gets an id of its real insert time; the
-- layout is unchanged. A timeline id cut-off in SQL is therefore
-- ((extract(epoch from t) * 1000)::bigint << 16).
DO $outer$
DECLARE
    secret text := md5(gen_random_uuid()::text || clock_timestamp()::text);
BEGIN
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION timestamp_id(table_name text) RETURNS bigint AS $body$
        DECLARE
            time_part bigint;
            sequence_base bigint;
        BEGIN
            time_part := (floor(extract(epoch FROM clock_timestamp()) * 1000))::bigint << 16;
            sequence_base := ('x' || substr(md5(table_name || %L || time_part::text), 1, 4))::bit(16)::bigint;
            RETURN time_part | ((sequence_base + nextval(table_name || '_id_seq')) & 65535);
        END
        $body$ LANGUAGE plpgsql VOLATILE
    $f$, secret);
END
$outer$;

CREATE SEQUENCE accounts_id_seq;
CREATE SEQUENCE statuses_id_seq;

-- accounts: local and remote actors (domain NULL = local)
CREATE TABLE accounts (
    id bigint NOT NULL DEFAULT timestamp_id('accounts') PRIMARY KEY,
    username character varying NOT NULL DEFAULT '',
    domain character varying,
    private_key text,
    public_key text NOT NULL DEFAULT '',
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL,
    note text NOT NULL DEFAULT '',
    display_name character varying NOT NULL DEFAULT '',
    uri character varying NOT NULL DEFAULT '',
    url character varying,
    avatar_file_name character varying,
    avatar_content_type character varying,
    avatar_remote_url character varying,
    header_file_name character varying,
    header_content_type character varying,
    header_remote_url character varying NOT NULL DEFAULT '',
    locked boolean NOT NULL DEFAULT false,
    inbox_url character varying NOT NULL DEFAULT '',
    outbox_url character varying NOT NULL DEFAULT '',
    shared_inbox_url character varying NOT NULL DEFAULT '',
    followers_url character varying NOT NULL DEFAULT '',
    following_url character varying NOT NULL DEFAULT '',
    protocol integer NOT NULL DEFAULT 0,
    memorial boolean NOT NULL DEFAULT false,
    moved_to_account_id bigint REFERENCES accounts (id) ON DELETE SET NULL,
    fields jsonb,
    actor_type character varying,
    discoverable boolean,
    also_known_as character varying[],
    silenced_at timestamp without time zone,
    suspended_at timestamp without time zone,
    hide_collections boolean,
    sensitized_at timestamp without time zone,
    suspension_origin integer,
    trendable boolean,
    indexable boolean NOT NULL DEFAULT false
);
ALTER SEQUENCE accounts_id_seq OWNED BY accounts.id;
CREATE UNIQUE INDEX index_accounts_on_username_and_domain_lower
    ON accounts (lower((username)::text), COALESCE(lower((domain)::text), ''::text));
CREATE INDEX index_accounts_on_domain_and_id ON accounts (domain, id);
CREATE INDEX index_accounts_on_uri ON accounts (uri);
CREATE INDEX index_accounts_on_moved_to_account_id ON accounts (moved_to_account_id)
    WHERE moved_to_account_id IS NOT NULL;

-- account_stats: one row per account, the counters of the Account entity
CREATE TABLE account_stats (
    id bigserial PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    statuses_count bigint NOT NULL DEFAULT 0,
    following_count bigint NOT NULL DEFAULT 0,
    followers_count bigint NOT NULL DEFAULT 0,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL,
    last_status_at timestamp without time zone
);
CREATE UNIQUE INDEX index_account_stats_on_account_id ON account_stats (account_id);
CREATE INDEX index_account_stats_on_last_status_at_and_account_id
    ON account_stats (last_status_at DESC NULLS LAST, account_id);

-- oauth_applications before users: users.created_by_application_id refers to it
CREATE TABLE oauth_applications (
    id bigserial PRIMARY KEY,
    name character varying NOT NULL,
    uid character varying NOT NULL,
    secret character varying NOT NULL,
    redirect_uri text NOT NULL,
    scopes character varying NOT NULL DEFAULT '',
    created_at timestamp without time zone,
    updated_at timestamp without time zone,
    superapp boolean NOT NULL DEFAULT false,
    website character varying,
    owner_type character varying,
    owner_id bigint,
    confidential boolean NOT NULL DEFAULT true
);
CREATE UNIQUE INDEX index_oauth_applications_on_uid ON oauth_applications (uid);
CREATE INDEX index_oauth_applications_on_owner_id_and_owner_type
    ON oauth_applications (owner_id, owner_type);

-- users: local sign-in data; current_sign_in_at drives the 7-day "active" rule of feeds
CREATE TABLE users (
    id bigserial PRIMARY KEY,
    email character varying NOT NULL DEFAULT '',
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL,
    encrypted_password character varying NOT NULL DEFAULT '',
    reset_password_token character varying,
    sign_in_count integer NOT NULL DEFAULT 0,
    current_sign_in_at timestamp without time zone,
    last_sign_in_at timestamp without time zone,
    confirmation_token character varying,
    confirmed_at timestamp without time zone,
    locale character varying,
    otp_required_for_login boolean NOT NULL DEFAULT false,
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    disabled boolean NOT NULL DEFAULT false,
    chosen_languages character varying[],
    created_by_application_id bigint REFERENCES oauth_applications (id) ON DELETE SET NULL,
    approved boolean NOT NULL DEFAULT true,
    settings text,
    time_zone character varying
);
CREATE INDEX index_users_on_account_id ON users (account_id);
CREATE UNIQUE INDEX index_users_on_email ON users (email);
CREATE UNIQUE INDEX index_users_on_confirmation_token ON users (confirmation_token);
-- not in Mastodon: fan-out selects active followers by this column
CREATE INDEX index_users_on_current_sign_in_at ON users (current_sign_in_at);

ALTER TABLE oauth_applications
    ADD CONSTRAINT fk_b0988c7c0a FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE CASCADE;

CREATE TABLE oauth_access_tokens (
    id bigserial PRIMARY KEY,
    token character varying NOT NULL,
    refresh_token character varying,
    expires_in integer,
    revoked_at timestamp without time zone,
    created_at timestamp without time zone NOT NULL,
    scopes character varying,
    application_id bigint REFERENCES oauth_applications (id) ON DELETE CASCADE,
    resource_owner_id bigint REFERENCES users (id) ON DELETE CASCADE,
    last_used_at timestamp without time zone,
    last_used_ip inet
);
CREATE UNIQUE INDEX index_oauth_access_tokens_on_token ON oauth_access_tokens (token);
CREATE UNIQUE INDEX index_oauth_access_tokens_on_refresh_token
    ON oauth_access_tokens (refresh_token text_pattern_ops) WHERE refresh_token IS NOT NULL;
CREATE INDEX index_oauth_access_tokens_on_resource_owner_id
    ON oauth_access_tokens (resource_owner_id) WHERE resource_owner_id IS NOT NULL;

-- conversations: statuses.conversation_id points here (thread grouping)
CREATE TABLE conversations (
    id bigserial PRIMARY KEY,
    uri character varying,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL
);
CREATE UNIQUE INDEX index_conversations_on_uri
    ON conversations (uri text_pattern_ops) WHERE uri IS NOT NULL;

-- statuses: posts and reblogs; visibility 0 public, 1 unlisted, 2 private, 3 direct, 4 limited
CREATE TABLE statuses (
    id bigint NOT NULL DEFAULT timestamp_id('statuses') PRIMARY KEY,
    uri character varying,
    text text NOT NULL DEFAULT '',
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL,
    in_reply_to_id bigint REFERENCES statuses (id) ON DELETE SET NULL,
    reblog_of_id bigint REFERENCES statuses (id) ON DELETE CASCADE,
    url character varying,
    sensitive boolean NOT NULL DEFAULT false,
    visibility integer NOT NULL DEFAULT 0,
    spoiler_text text NOT NULL DEFAULT '',
    reply boolean NOT NULL DEFAULT false,
    language character varying,
    conversation_id bigint,
    local boolean,
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    application_id bigint,
    in_reply_to_account_id bigint REFERENCES accounts (id) ON DELETE SET NULL,
    poll_id bigint,
    deleted_at timestamp without time zone,
    edited_at timestamp without time zone,
    trendable boolean,
    ordered_media_attachment_ids bigint[]
);
ALTER SEQUENCE statuses_id_seq OWNED BY statuses.id;
-- an account's own statuses, newest first (profile pages, feed regeneration, merge on follow)
CREATE INDEX index_statuses_20190820 ON statuses (account_id, id DESC, visibility, updated_at)
    WHERE deleted_at IS NULL;
CREATE INDEX index_statuses_on_account_id ON statuses (account_id);
CREATE INDEX index_statuses_on_conversation_id ON statuses (conversation_id);
CREATE INDEX index_statuses_on_deleted_at ON statuses (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX index_statuses_on_in_reply_to_account_id ON statuses (in_reply_to_account_id)
    WHERE in_reply_to_account_id IS NOT NULL;
CREATE INDEX index_statuses_on_in_reply_to_id ON statuses (in_reply_to_id)
    WHERE in_reply_to_id IS NOT NULL;
CREATE INDEX index_statuses_on_reblog_of_id_and_account_id ON statuses (reblog_of_id, account_id);
CREATE UNIQUE INDEX index_statuses_on_uri ON statuses (uri text_pattern_ops) WHERE uri IS NOT NULL;
CREATE INDEX index_statuses_public_20250129 ON statuses (id DESC, language, account_id)
    WHERE deleted_at IS NULL AND visibility = 0 AND reblog_of_id IS NULL
      AND (NOT reply OR in_reply_to_account_id = account_id);

CREATE TABLE status_stats (
    id bigserial PRIMARY KEY,
    status_id bigint NOT NULL REFERENCES statuses (id) ON DELETE CASCADE,
    replies_count bigint NOT NULL DEFAULT 0,
    reblogs_count bigint NOT NULL DEFAULT 0,
    favourites_count bigint NOT NULL DEFAULT 0,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL
);
CREATE UNIQUE INDEX index_status_stats_on_status_id ON status_stats (status_id);

CREATE TABLE mentions (
    id bigserial PRIMARY KEY,
    status_id bigint NOT NULL REFERENCES statuses (id) ON DELETE CASCADE,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL,
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    silent boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX index_mentions_on_account_id_and_status_id ON mentions (account_id, status_id);
CREATE INDEX index_mentions_on_status_id ON mentions (status_id);

-- follows: account_id follows target_account_id
CREATE TABLE follows (
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
CREATE UNIQUE INDEX index_follows_on_account_id_and_target_account_id
    ON follows (account_id, target_account_id);
-- fan-out pages through an author's followers with this one
CREATE INDEX index_follows_on_target_account_id_and_account_id
    ON follows (target_account_id, account_id);

-- lists: replies_policy 0 list, 1 followed, 2 none; exclusive lists hide members from home
CREATE TABLE lists (
    id bigserial PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    title character varying NOT NULL DEFAULT '',
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL,
    replies_policy integer NOT NULL DEFAULT 0,
    exclusive boolean NOT NULL DEFAULT false
);
CREATE INDEX index_lists_on_account_id ON lists (account_id);

-- list_accounts: account_id is a member of list_id (through the owner's follow)
CREATE TABLE list_accounts (
    id bigserial PRIMARY KEY,
    list_id bigint NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    follow_id bigint REFERENCES follows (id) ON DELETE CASCADE,
    follow_request_id bigint
);
CREATE UNIQUE INDEX index_list_accounts_on_account_id_and_list_id
    ON list_accounts (account_id, list_id);
CREATE INDEX index_list_accounts_on_follow_id ON list_accounts (follow_id)
    WHERE follow_id IS NOT NULL;
CREATE INDEX index_list_accounts_on_list_id_and_account_id ON list_accounts (list_id, account_id);

CREATE TABLE blocks (
    id bigserial PRIMARY KEY,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL,
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    target_account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    uri character varying
);
CREATE UNIQUE INDEX index_blocks_on_account_id_and_target_account_id
    ON blocks (account_id, target_account_id);
CREATE INDEX index_blocks_on_target_account_id ON blocks (target_account_id);

CREATE TABLE mutes (
    id bigserial PRIMARY KEY,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL,
    hide_notifications boolean NOT NULL DEFAULT true,
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    target_account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    expires_at timestamp without time zone
);
CREATE UNIQUE INDEX index_mutes_on_account_id_and_target_account_id
    ON mutes (account_id, target_account_id);
CREATE INDEX index_mutes_on_target_account_id ON mutes (target_account_id);
