/*
 * The feed filters as pure decisions: Mastodon's filter_from_home? and filter_from_list?,
 * rule for rule and in the same order, over facts the caller loaded beforehand (per page of
 * receivers for a fan-out, per batch of statuses for a merge or rebuild). Nothing here
 * touches a database, which is what lets the unit tests walk every rule.
 *
 * Not carried over: phrase filters (Mastodon applies them when reading, since 4.0) and
 * account domain blocks (tusk's schema has no account_domain_blocks table).
 */
#include "cache/internal.h"

#include <string.h>

static const char *const reason_names[] = {
    "delivered",
    "orphan reply",
    "exclusive list",
    "language",
    "missing reblog",
    "blocking",
    "muting",
    "blocked by author",
    "reply to others",
    "hidden reblog",
    "blocked by reblogged author",
    "list replies policy",
};

const char *cache_filter_reason_name(int reason)
{
    if (reason < 0 || reason >= (int)(sizeof(reason_names) / sizeof(reason_names[0])))
        return "unknown";
    return reason_names[reason];
}

/* does a comma-separated follows.languages list allow this language? An empty list, or a
 * status without a language, lets everything through (Mastodon's `present?` checks). */
bool cache_language_allowed(const char *languages, const char *language)
{
    if (!languages || !*languages || !language || !*language)
        return true;
    size_t len = strlen(language);
    const char *p = languages;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n == len && memcmp(p, language, len) == 0)
            return true;
        p += n;
        if (*p == ',')
            p++;
    }
    return false;
}

/* Mastodon's Status#reply?: a reply id or the reply flag */
static bool is_reply(const cache_filter_status *s)
{
    return s->in_reply_to_id != 0 || s->reply;
}

int cache_filter_home(const cache_filter_status *s, int64_t receiver_id,
                      const cache_filter_facts *f, bool list_timeline)
{
    bool reply = is_reply(s);
    bool reblog = s->reblog_of_id != 0;
    /* 1. your own statuses always reach your feed */
    if (receiver_id == s->account_id)
        return CACHE_FILTER_NONE;
    /* 2. a reply whose parent is gone cannot be placed in a thread */
    if (reply && (s->in_reply_to_id == 0 || s->in_reply_to_account_id == 0))
        return CACHE_FILTER_ORPHAN_REPLY;
    /* 3. exclusive lists take their members out of home */
    if (!list_timeline && f->author_in_exclusive_list)
        return CACHE_FILTER_EXCLUSIVE_LIST;
    /* 4. the follow's language choice */
    if (!cache_language_allowed(f->languages, s->language))
        return CACHE_FILTER_LANGUAGE;
    /* 5. a reblog of a status that is gone shows nothing */
    if (reblog && s->reblog_account_id == 0)
        return CACHE_FILTER_MISSING_REBLOG;
    /* 6. anyone involved blocked or muted by the receiver */
    if (f->blocking)
        return CACHE_FILTER_BLOCKING;
    if (f->muting)
        return CACHE_FILTER_MUTING;
    /* 7. the author blocks the receiver */
    if (f->blocked_by_author)
        return CACHE_FILTER_BLOCKED_BY;
    if (reply && s->in_reply_to_account_id != 0) {
        /* 8. replies only between people the receiver follows, to the receiver, or to self */
        if (!f->follows_reply_target && receiver_id != s->in_reply_to_account_id &&
            s->account_id != s->in_reply_to_account_id)
            return CACHE_FILTER_REPLY;
        return CACHE_FILTER_NONE;
    }
    if (reblog) {
        /* 9. reblogs hidden on the follow, or by someone who blocks the receiver */
        if (f->hides_reblogs)
            return CACHE_FILTER_HIDDEN_REBLOG;
        if (f->blocked_by_reblog_author)
            return CACHE_FILTER_REBLOG_BLOCKED_BY;
    }
    return CACHE_FILTER_NONE;
}

int cache_filter_list(const cache_filter_status *s, int64_t list_owner_id, int replies_policy,
                      bool reply_target_in_list)
{
    if (is_reply(s) && s->in_reply_to_account_id != s->account_id) {
        bool filter = s->in_reply_to_account_id != list_owner_id;
        filter = filter && replies_policy != CACHE_REPLIES_FOLLOWED;
        filter = filter && !(replies_policy == CACHE_REPLIES_LIST && reply_target_in_list);
        return filter ? CACHE_FILTER_LIST_REPLY : CACHE_FILTER_NONE;
    }
    return CACHE_FILTER_NONE;
}

/* the filter's view of a full status */
void cache_status_filter_view(const cache_status *s, cache_filter_status *out)
{
    out->id = s->id;
    out->account_id = s->account_id;
    out->reply = s->reply;
    out->in_reply_to_id = s->in_reply_to_id;
    out->in_reply_to_account_id = s->in_reply_to_account_id;
    out->reblog_of_id = s->reblog_of_id;
    out->reblog_account_id = s->reblog_of_id ? s->reblog_account_id : 0;
    out->language = s->language;
}
