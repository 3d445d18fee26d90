/*
 * Table-driven tests of the query classifier (router/classify.c): every case states every
 * field of router_class it expects, in a short spec; fields not named must be false / zero.
 *
 * Spec words: safe (replica_safe), begin, ro, rw, end, set=NAME (sets_session_state with
 * set_name NAME, "set=" for an empty name), reset (reset_all), dro=on|off
 * (default_read_only), pin, unpin, primary|replica (override), n=N (statements; 1 when not
 * named), tusk=route:X|lsn:X/Y|bad, unsure (uncertain), trunc (truncated).
 * Input flags: @scs (standard_conforming_strings off), @sro (session read only), @mb (a
 * client encoding whose characters may end in a backslash byte).
 */
#include "router/router.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define EXTRA_UNSAFE "my_writer, audit.log_*, \"Bump_Counter\""

typedef struct ccase {
    const char *sql;
    const char *spec;
} ccase;

static const ccase cases[] = {
    /* ---- reads ---- */
    {"select 1", "safe"},
    {"SELECT * FROM t", "safe"},
    {"  select 1  ", "safe"},
    {"select 1;", "safe"},
    {"SeLeCt 1", "safe"},
    {"SELECT\n1", "safe"},
    {"select \tx\r\nfrom\ft", "safe"},
    {"VALUES (1), (2)", "safe"},
    {"values(1)", "safe"},
    {"TABLE t", "safe"},
    {"table only t", "safe"},
    {"SHOW search_path", "safe"},
    {"show all", "safe"},
    {"SHOW TRANSACTION ISOLATION LEVEL", "safe"},
    {"show nextval", "safe"},
    {"(select 1)", "safe"},
    {"((select 1))", "safe"},
    {"(select 1) union (select 2)", "safe"},
    {"((select 1) union all (select 2)) order by 1", "safe"},
    {"(values (1))", "safe"},
    {"(table t)", "safe"},
    {"(with x as (select 1) select * from x)", "safe"},
    {"with x as (select 1) select * from x", "safe"},
    {"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r WHERE n < 10) SELECT * FROM r",
     "safe"},
    {"with x as materialized (select 1) select * from x", "safe"},
    {"with x as not materialized (select 1) select 1", "safe"},
    {"with recursive r as (select 1) search depth first by a set ord select * from r", "safe"},
    {"with recursive r as (select 1) cycle a set mark using path select * from r", "safe"},
    {"select count(*) from statuses where account_id = $1", "safe"},
    {"SELECT \"statuses\".* FROM \"statuses\" WHERE \"statuses\".\"id\" = $1 LIMIT $2", "safe"},
    {"select * from t where id in (select id from u)", "safe"},
    {"select exists(select 1 from t)", "safe"},
    {"select * from t join u using (id) left join v on v.id = t.id", "safe"},
    {"select * from t tablesample system (10)", "safe"},
    {"select * from generate_series(1, 10)", "safe"},
    {"select lower(name), coalesce(a, b) from t", "safe"},
    {"select now(), current_timestamp, current_user", "safe"},
    {"select substring(x from 1 for 2) from t", "safe"},
    {"select overlay('abc' placing 'x' from 1 for 1)", "safe"},
    {"select * from t fetch first 10 rows only", "safe"},
    {"select * from t offset 5 rows", "safe"},
    {"select * from t order by id desc limit 20 offset 40", "safe"},
    {"select distinct on (a) a, b from t", "safe"},
    {"select a, count(*) from t group by a having count(*) > 1", "safe"},
    {"select row_number() over (partition by a order by b) from t", "safe"},
    {"select * from t window w as (order by a)", "safe"},
    {"select txid_current_snapshot()", "safe"},
    {"select pg_is_in_recovery()", "safe"},
    {"select x::regclass from t", "safe"},
    {"select array[1,2]", "safe"},
    {"select '{1,2}'::int[]", "safe"},
    {"select $1::text", "safe"},
    {"select a->>'b' from t where a @> '{}'", "safe"},
    {"select -1", "safe"},
    {"select 1--2\n", "safe"},
    {"select 1/*2*/", "safe"},
    {"select 1*/*c*/2", "safe"},
    {"select .5, 1.5e3, 10., 1e-3", "safe"},
    {"select t.*, * from t", "safe"},
    {"select \xc3\xa9t\xc3\xa9 from t", "safe"},
    {"select \xe6\x97\xa5\xe6\x9c\xac(1)", "safe"},
    {"select 1 /* comment */", "safe"},
    {"select 1 -- trailing comment", "safe"},
    {"-- only a comment\nselect 1", "safe"},
    {"/* leading */ select 1", "safe"},
    {"select/**/1", "safe"},
    {"select pg_sleep(0), pg_typeof(1), lower('x')", "safe"},
    /* ---- writes, DDL, utility: never on a replica ---- */
    {"insert into t values (1)", ""},
    {"INSERT INTO t SELECT * FROM u", ""},
    {"update t set a = 1", ""},
    {"delete from t", ""},
    {"merge into t using u on t.id = u.id when matched then delete", ""},
    {"with x as (select 1) insert into t select * from x", ""},
    {"with x as (select 1) update t set a = 1", ""},
    {"with x as (select 1) delete from t", ""},
    {"with x as (select 1) merge into t using x on true when matched then delete", ""},
    {"copy t to stdout", ""},
    {"copy (select 1) to stdout", ""},
    {"copy t from stdin", ""},
    {"truncate t", ""},
    {"create table t (a int)", ""},
    {"create unlogged table t (a int)", ""},
    {"create table temp (a int)", ""},
    {"create table t (temp int)", ""},
    {"drop table t", ""},
    {"alter table t add column b int", ""},
    {"create index on t (a)", ""},
    {"vacuum t", ""},
    {"analyze t", ""},
    {"call p()", ""},
    {"do $$ begin end $$", ""},
    {"lock table t", ""},
    {"grant select on t to u", ""},
    {"cluster t", ""},
    {"reindex table t", ""},
    {"refresh materialized view mv", ""},
    {"checkpoint", ""},
    {"notify ch", ""},
    {"comment on table t is 'x'", ""},
    {"security label on table t is 'x'", ""},
    {"create schema s", ""},
    {"fetch 10 from c", ""},
    {"move c", ""},
    {"execute p", ""},
    {"execute p(1, 2)", ""},
    {"close c", ""},
    {"declare c cursor for select 1", ""},
    {"declare c cursor without hold for select 1", ""},
    {"unlisten ch", ""},
    {"deallocate p", ""},
    {"DEALLOCATE PREPARE p", ""},
    {"discard plans", ""},
    {"discard sequences", ""},
    {"import foreign schema s from server x into y", ""},
    {"reassign owned by a to b", ""},
    {"foo bar", ""},
    {"start", ""},
    {"1", ""},
    {"'x'", ""},
    {"$1", ""},
    {"*", ""},
    /* ---- locking clauses ---- */
    {"select * from t for update", ""},
    {"select * from t for share", ""},
    {"select * from t for no key update", ""},
    {"select * from t for key share", ""},
    {"select * from t for update of t nowait", ""},
    {"select * from t for update skip locked", ""},
    {"SELECT * FROM t FOR UPDATE", ""},
    {"select * from t for /* c */ update", ""},
    {"select * from t for\nupdate", ""},
    {"select * from t for -- c\n update", ""},
    {"select * from (select * from t for update) s", ""},
    {"select * from t where id=1for update", ""},
    {"select 1for update", ""},
    {"(select * from t) for update", ""},
    {"with x as (select * from t for update) select * from x", ""},
    {"select 1 from t for update; select 2", "n=2"},
    {"select 'for update' from t", "safe"},
    {"select \"for\", \"update\" from t", "safe"},
    {"select t.for, t.update from t", "safe"},
    {"select for_update from t", "safe"},
    {"select * from t -- for update", "safe"},
    {"select * from t /* for update */", "safe"},
    {"select $$for update$$", "safe"},
    {"select $x$ for update $x$", "safe"},
    {"select E'\\' for update'", "safe"},
    {"select 'a\\' for update", ""},
    {"select 'a\\' for update'", "@scs safe"},
    {"select 'a\\' for update'", "unsure"},
    /* ---- SELECT INTO ---- */
    {"select 1 into t", ""},
    {"select * into temp t from u", "pin"},
    {"select * into temporary table t from u", "pin"},
    {"select * into global temp t from u", "pin"},
    {"select * into local temporary t from u", "pin"},
    {"select * into pg_temp.t from u", "pin"},
    {"select * into unlogged t from u", ""},
    {"select * into table t from u", ""},
    {"select 1 as into", "safe"},
    {"select t.into from t", "safe"},
    {"select \"into\" from t", "safe"},
    {"select 'into'", "safe"},
    /* ---- data-modifying WITH, and columns named like DML keywords ---- */
    {"with x as (insert into t values (1) returning *) select * from x", ""},
    {"with x as (update t set a = 1 returning *) select * from x", ""},
    {"with x as (delete from t returning *) select * from x", ""},
    {"with x as materialized (delete from t returning *) select * from x", ""},
    {"with x as not materialized (delete from t returning *) select 1", ""},
    {"WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", ""},
    {"with x as ( /* c */ delete from t returning *) select * from x", ""},
    {"with a as (select 1), b as (insert into t select * from a returning *) select * from b", ""},
    {"with a as (with b as (select 1) delete from t returning *) select * from a", ""},
    {"select * from (with x as (delete from t returning *) select * from x) s", ""},
    {"with recursive r as (select 1) search depth first by a set ord delete from t", ""},
    {"with recursive r as (select 1) cycle a set mark using path update t set a = 1", ""},
    {"with r as (select 1) search depth first by a set by delete from t", ""},
    {"with r as (select 1) cycle a set m using \"p\" insert into t values (1)", ""},
    {"(with x as (select 1) select 1) union (with y as (delete from t returning *) select 1)", ""},
    {"select update from t", "safe"},
    {"select a, update, delete, insert, merge from t", "safe"},
    {"select * from t order by update", "safe"},
    {"select max(update) from t", "safe"},
    {"select (update) from t", "safe"},
    {"select x.update from t x", "safe"},
    {"select 1 as update", "safe"},
    {"select 1 as delete, 2 as insert", "safe"},
    {"select \"update\" from \"delete\"", "safe"},
    {"select 'update t set a = 1'", "safe"},
    {"with update as (select 1) select * from update", "safe"},
    {"select * from t where delete = 1", "safe"},
    {"select count(*) filter (where update) from t", "safe"},
    {"select update + 1, -delete, insert::text from t", "safe"},
    {"select distinct on (a) update from t", ""},
    /* ---- unsafe functions ---- */
    {"select nextval('s')", ""},
    {"SELECT NEXTVAL('s')", ""},
    {"select NextVal ('s')", ""},
    {"select nextval /* c */ ('s')", ""},
    {"select nextval -- c\n('s')", ""},
    {"select pg_catalog.nextval('s')", ""},
    {"select pg_catalog . nextval ('s')", ""},
    {"select \"pg_catalog\".\"nextval\"('s')", ""},
    {"select \"nextval\"('s')", ""},
    {"select \"NEXTVAL\"('s')", ""},
    {"select setval('s', 1)", ""},
    {"select currval('s')", ""},
    {"select lastval()", ""},
    {"select pg_advisory_lock(1)", "pin"},
    {"select pg_advisory_lock_shared(1)", "pin"},
    {"select pg_try_advisory_lock(1)", "pin"},
    {"select PG_TRY_ADVISORY_LOCK_SHARED(1)", "pin"},
    {"select pg_advisory_xact_lock(1)", ""},
    {"select pg_try_advisory_xact_lock(1)", ""},
    {"select pg_advisory_unlock(1)", ""},
    {"select pg_advisory_unlock_all()", "unpin"},
    {"select txid_current()", ""},
    {"select pg_current_xact_id()", ""},
    {"select pg_notify('c', 'x')", ""},
    {"select set_config('a.b', 'c', false)", "pin"},
    {"select pg_catalog.set_config('search_path', '', false)", "pin"},
    {"select lo_import('/x')", ""},
    {"select lo_unlink(1)", ""},
    {"select lo_get(1)", ""},
    {"select lowrite(0, 'x')", ""},
    {"select dblink('c', 'q')", ""},
    {"select dblink_exec('c', 'q')", ""},
    {"select timestamp_id('statuses')", ""},
    {"select pg_current_wal_lsn()", ""},
    {"select pg_create_physical_replication_slot('s')", ""},
    {"select * from nextval('s')", ""},
    {"select 1 from t where a = nextval('s')", ""},
    {"select coalesce(nextval('s'), 1)", ""},
    {"select (select nextval('s'))", ""},
    {"values (nextval('s'))", ""},
    {"select my_writer()", ""},
    {"select public.my_writer(1)", ""},
    {"select MY_WRITER()", ""},
    {"select audit.log_event()", ""},
    {"select log_x()", ""},
    {"select \"Bump_Counter\"()", ""},
    {"select bump_counter()", ""},
    {"select U&\"nextval\"('s')", ""},
    {"select U&\"\\006Eextval\"('s')", ""},
    {"select U&\"d!0061t\" UESCAPE '!' ('s')", ""},
    {"select 'nextval(1)'", "safe"},
    {"select $$ nextval('s') $$", "safe"},
    {"select /* nextval('s') */ 1", "safe"},
    {"select nextval from t", "safe"},
    {"select t.nextval, \"nextval\" from t", "safe"},
    {"select 1 as nextval", "safe"},
    {"select nextval_x('s'), xnextval('s'), nextval$1('s')", "safe"},
    {"select \"next\"\"val\"('s')", "safe"},
    {"select my_writer_reader(), log(2), lo(1), dblin(1)", "safe"},
    {"select U&\"col\" from t", "safe"},
    /* ---- EXPLAIN ---- */
    {"explain select 1", "safe"},
    {"EXPLAIN SELECT * FROM t", "safe"},
    {"explain verbose select 1", "safe"},
    {"explain (costs off) select 1", "safe"},
    {"explain (format json, costs false) select 1", "safe"},
    {"explain (format text, buffers) select 1", "safe"},
    {"explain (select 1)", "safe"},
    {"explain ((select 1))", "safe"},
    {"explain (costs off) (select 1)", "safe"},
    {"explain values (1)", "safe"},
    {"explain table t", "safe"},
    {"explain with x as (select 1) select * from x", "safe"},
    {"explain select 'analyze'", "safe"},
    {"explain analyze select 1", ""},
    {"explain analyse select 1", ""},
    {"EXPLAIN ANALYZE VERBOSE SELECT 1", ""},
    {"explain (analyze) select 1", ""},
    {"explain (analyze true) select 1", ""},
    {"explain (analyze false) select 1", ""},
    {"explain (costs off, analyze) select 1", ""},
    {"explain (\"analyze\") select 1", ""},
    {"explain insert into t values (1)", ""},
    {"explain update t set a = 1", ""},
    {"explain delete from t", ""},
    {"explain execute p", ""},
    {"explain create table x as select 1", ""},
    {"explain select * from t for update", ""},
    {"explain select 1 into t", ""},
    {"explain with x as (delete from t returning *) select * from x", ""},
    {"explain select nextval('s')", ""},
    {"explain", ""},
    /* ---- transactions ---- */
    {"begin", "begin"},
    {"BEGIN;", "begin"},
    {"begin work", "begin"},
    {"begin transaction", "begin"},
    {"begin read only", "safe begin ro"},
    {"BEGIN READ ONLY", "safe begin ro"},
    {"begin transaction read only", "safe begin ro"},
    {"begin isolation level repeatable read, read only", "safe begin ro"},
    {"begin read only isolation level repeatable read", "safe begin ro"},
    {"begin read only deferrable", "safe begin ro"},
    {"begin isolation level serializable read only deferrable", "begin ro"},
    {"begin read write", "begin rw"},
    {"begin read only, read write", "begin rw"},
    {"begin read write, read only", "begin rw"},
    {"start transaction", "begin"},
    {"start transaction read only", "safe begin ro"},
    {"START TRANSACTION READ WRITE", "begin rw"},
    {"start transaction isolation level read committed", "begin"},
    {"begin isolation level read committed", "begin"},
    {"commit", "safe end"},
    {"COMMIT WORK", "safe end"},
    {"commit transaction", "safe end"},
    {"commit and chain", "safe end"},
    {"commit and no chain", "safe end"},
    {"end", "safe end"},
    {"end transaction", "safe end"},
    {"rollback", "safe end"},
    {"rollback work", "safe end"},
    {"abort", "safe end"},
    {"rollback and chain", "safe end"},
    {"rollback to savepoint a", "safe"},
    {"rollback to a", "safe"},
    {"rollback work to savepoint a", "safe"},
    {"rollback transaction to a", "safe"},
    {"savepoint a", "safe"},
    {"release savepoint a", "safe"},
    {"release a", "safe"},
    {"prepare transaction 'x'", "end"},
    {"commit prepared 'x'", ""},
    {"rollback prepared 'x'", ""},
    {"begin; select 1; commit", "begin end n=3"},
    {"begin read only; select 1; commit", "safe begin ro end n=3"},
    {"begin read only; insert into t values (1); commit", "begin ro end n=3"},
    {"select 1; commit", "safe end n=2"},
    {"set transaction read only", "safe ro"},
    {"SET TRANSACTION READ ONLY", "safe ro"},
    {"set transaction read write", "rw"},
    {"set transaction isolation level serializable", ""},
    {"set transaction isolation level repeatable read", "safe"},
    {"set transaction isolation level read committed, read only", "safe ro"},
    {"set transaction snapshot '0001'", ""},
    {"set transaction_read_only = on", "safe ro"},
    {"set transaction_read_only to true", "safe ro"},
    {"set transaction_read_only = off", "rw"},
    {"set transaction_read_only to default", "rw"},
    {"set local transaction_read_only = on", "safe ro"},
    {"reset transaction_read_only", "safe"},
    {"set transaction_isolation = 'serializable'", ""},
    {"set transaction_isolation = 'repeatable read'", "safe"},
    {"set transaction_deferrable = on", "safe"},
    {"begin", "@sro safe begin ro"},
    {"begin read write", "@sro begin rw"},
    {"start transaction isolation level repeatable read", "@sro safe begin ro"},
    {"begin isolation level serializable", "@sro begin ro"},
    /* a new session default applies from the next transaction: not to a BEGIN in the same
     * query string, whose implicit transaction started with the old one ... */
    {"set default_transaction_read_only = on; begin",
     "begin set=default_transaction_read_only dro=on n=2"},
    {"set default_transaction_read_only = off; begin",
     "@sro safe begin ro set=default_transaction_read_only dro=off n=2"},
    {"reset all; begin", "@sro safe begin ro set= reset dro=off n=2 unpin"},
    {"set session characteristics as transaction read only; select 1; begin",
     "begin set=session_characteristics dro=on n=3"},
    /* ... but to one after a COMMIT, which starts a new transaction */
    {"set default_transaction_read_only = on; commit; begin",
     "safe begin ro end set=default_transaction_read_only dro=on n=3"},
    {"begin; set default_transaction_read_only = on; commit; select 1; begin",
     "begin ro end set=default_transaction_read_only dro=on n=5"},
    {"set default_transaction_read_only = off; rollback; begin",
     "@sro begin end set=default_transaction_read_only dro=off n=3"},
    /* ---- SET / RESET ---- */
    {"set search_path = a, b", "safe set=search_path"},
    {"SET search_path TO a", "safe set=search_path"},
    {"set search_path to default", "safe set=search_path"},
    {"set session search_path = a", "safe set=search_path"},
    {"SET SESSION statement_timeout = 0", "safe set=statement_timeout"},
    {"set local search_path = a", "safe"},
    {"set local statement_timeout = 0", "safe"},
    {"SET LOCAL TIME ZONE 'UTC'", "safe"},
    {"set time zone 'UTC'", "safe set=timezone"},
    {"set time zone local", "safe set=timezone"},
    {"set time zone default", "safe set=timezone"},
    {"set timezone = 'UTC'", "safe set=timezone"},
    {"SET TimeZone TO 'UTC'", "safe set=timezone"},
    {"set \"TimeZone\" to 'UTC'", "safe set=timezone"},
    {"set names 'utf8'", "safe set=client_encoding"},
    {"set client_encoding = 'utf8'", "safe set=client_encoding"},
    {"set schema 'app'", "safe set=search_path"},
    {"set role admin", "safe set=role"},
    {"set role none", "safe set=role"},
    {"reset role", "safe set=role"},
    {"set session authorization 'bob'", "safe set=session_authorization"},
    {"set session authorization default", "safe set=session_authorization"},
    {"reset session authorization", "safe set=session_authorization"},
    {"set xml option document", "safe set=xmloption"},
    {"set my.var = 1", "safe set=my.var"},
    {"set \"my\".\"var\" = 'x'", "safe set=my.var"},
    {"set MY.Var = 1", "safe set=my.var"},
    {"set application_name = 'for update'", "safe set=application_name"},
    {"set application_name = 'x'; select 1", "safe set=application_name n=2"},
    {"set a = 1; set b = 2", "safe set=a n=2"},
    {"set work_mem from current", "safe set=work_mem"},
    {"set statement_timeout = 5000", "safe set=statement_timeout"},
    {"set statement_timeout to '5s'", "safe set=statement_timeout"},
    {"set constraints all deferred", "safe"},
    {"SET CONSTRAINTS ALL IMMEDIATE", "safe"},
    {"reset all", "safe set= reset dro=off unpin"},
    {"RESET ALL", "safe set= reset dro=off unpin"},
    {"reset search_path", "safe set=search_path"},
    {"reset time zone", "safe set=timezone"},
    {"reset transaction isolation level", "safe"},
    {"set default_transaction_read_only = on", "safe set=default_transaction_read_only dro=on"},
    {"set default_transaction_read_only to 'on'", "safe set=default_transaction_read_only dro=on"},
    {"set default_transaction_read_only = true", "safe set=default_transaction_read_only dro=on"},
    {"set default_transaction_read_only = 1", "safe set=default_transaction_read_only dro=on"},
    {"set default_transaction_read_only = yes", "safe set=default_transaction_read_only dro=on"},
    {"set default_transaction_read_only = t", "safe set=default_transaction_read_only dro=on"},
    {"set default_transaction_read_only = off", "safe set=default_transaction_read_only dro=off"},
    {"set default_transaction_read_only = false", "safe set=default_transaction_read_only dro=off"},
    {"set default_transaction_read_only = 0", "safe set=default_transaction_read_only dro=off"},
    {"set default_transaction_read_only = o", "safe set=default_transaction_read_only dro=off"},
    {"set default_transaction_read_only to default",
     "safe set=default_transaction_read_only dro=off"},
    {"reset default_transaction_read_only", "safe set=default_transaction_read_only dro=off"},
    {"set default_transaction_read_only = 'maybe'",
     "safe set=default_transaction_read_only dro=off"},
    {"set local default_transaction_read_only = on", "safe"},
    {"set session characteristics as transaction read only",
     "safe set=session_characteristics dro=on"},
    {"SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
     "safe set=session_characteristics dro=off"},
    {"set session characteristics as transaction isolation level repeatable read",
     "safe set=session_characteristics"},
    {"set session characteristics as transaction isolation level serializable",
     "set=session_characteristics pin"},
    {"set default_transaction_isolation = 'serializable'", "set=default_transaction_isolation pin"},
    {"set default_transaction_isolation to serializable", "set=default_transaction_isolation pin"},
    {"set default_transaction_isolation = 'repeatable read'",
     "safe set=default_transaction_isolation unpin"},
    {"set local default_transaction_isolation = 'serializable'", "safe"},
    {"set search_path = a; reset all", "safe set=search_path reset dro=off n=2 unpin"},
    {"set", ""},
    {"set x", ""},
    {"set x =", ""},
    {"set 1 = 2", ""},
    {"reset", ""},
    {"set x.", ""},
    /* ---- tusk.* settings ---- */
    {"set tusk.route = primary", "safe tusk=route:primary"},
    {"set tusk.route = replica", "safe tusk=route:replica"},
    {"set tusk.route = auto", "safe tusk=route:auto"},
    {"SET tusk.route TO 'replica'", "safe tusk=route:replica"},
    {"set session tusk.route = PRIMARY", "safe tusk=route:primary"},
    {"set tusk.route to default", "safe tusk=route:auto"},
    {"reset tusk.route", "safe tusk=route:auto"},
    {"set \"tusk\".\"route\" = replica", "safe tusk=route:replica"},
    {"set TUSK.ROUTE = replica;", "safe tusk=route:replica"},
    {"/* tusk:primary */ set tusk.route = replica", "safe primary tusk=route:replica"},
    {"set tusk.route = bogus", "safe tusk=bad"},
    {"set tusk.route = 'replica', 'x'", "safe tusk=bad"},
    {"set tusk.route = 1", "safe tusk=bad"},
    {"set local tusk.route = replica", "safe tusk=bad"},
    {"set tusk.route from current", "safe tusk=bad"},
    {"set tusk.route = replica; select 1", "safe tusk=bad n=2"},
    {"select 1; set tusk.route = replica", "safe tusk=bad n=2"},
    {"set tusk.route = replica; set tusk.route = primary", "safe tusk=bad n=2"},
    {"set tusk.min_lsn = '16/B374D848'", "safe tusk=lsn:16/B374D848"},
    {"set tusk.min_lsn to '0/0'", "safe tusk=lsn:0/0"},
    {"SET tusk.min_lsn = '0/16b3748'", "safe tusk=lsn:0/16B3748"},
    {"set tusk.min_lsn = default", "safe tusk=lsn:0/0"},
    {"reset tusk.min_lsn", "safe tusk=lsn:0/0"},
    {"set tusk.min_lsn = 'garbage'", "safe tusk=bad"},
    {"set tusk.min_lsn = '1/2/3'", "safe tusk=bad"},
    {"set tusk.min_lsn = '123456789/0'", "safe tusk=bad"},
    {"set tusk.min_lsn = 16", "safe tusk=bad"},
    {"set tusk.min_lsn = E'1/2'", "safe tusk=bad"},
    {"set tusk.foo = 1", "safe tusk=bad"},
    {"set tusk.routex = 1", "safe tusk=bad"},
    {"reset tusk.route extra", "safe tusk=bad"},
    {"set tusker.route = replica", "safe set=tusker.route"},
    /* ---- pinning and unpinning ---- */
    {"listen ch", "pin"},
    {"LISTEN \"Ch\"", "pin"},
    {"unlisten *", "unpin"},
    {"prepare p as select 1", "pin"},
    {"PREPARE p (int) AS SELECT $1", "pin"},
    {"deallocate all", "unpin"},
    {"deallocate prepare all", "unpin"},
    {"create temp table t (a int)", "pin"},
    {"create temporary table t (a int)", "pin"},
    {"create local temp table t (a int)", "pin"},
    {"create global temporary table t (a int)", "pin"},
    {"CREATE TEMP TABLE t AS SELECT 1", "pin"},
    {"create temp view v as select 1", "pin"},
    {"create or replace temp view v as select 1", "pin"},
    {"create temp sequence s", "pin"},
    {"create table pg_temp.t (a int)", "pin"},
    {"create table \"pg_temp\".t (a int)", "pin"},
    {"create function pg_temp.f() returns int as 'select 1' language sql", "pin"},
    {"declare c cursor with hold for select 1", "pin"},
    {"DECLARE c NO SCROLL CURSOR WITH HOLD FOR SELECT 1", "pin"},
    {"declare c binary cursor with hold for select 1", "pin"},
    {"close all", "unpin"},
    {"discard all", "unpin reset dro=off"},
    {"DISCARD TEMP", "unpin"},
    {"discard temporary", "unpin"},
    {"load 'auto_explain'", "pin"},
    {"select pg_advisory_lock(1); select pg_advisory_unlock_all()", "pin unpin n=2"},
    /* ---- overrides ---- */
    {"/* tusk:primary */ select 1", "safe primary"},
    {"/* tusk:replica */ insert into t values (1)", "replica"},
    {"/*tusk:replica*/select 1", "safe replica"},
    {"/*  TUSK:REPLICA  */ select 1", "safe replica"},
    {"-- tusk:primary\nselect 1", "safe primary"},
    {"--tusk:replica\r\nselect 1", "safe replica"},
    {"  \n /* tusk:replica */ select 1", "safe replica"},
    {"/* app */ /* tusk:replica */ select 1", "safe replica"},
    {"/* tusk:replica */ /* tusk:primary */ select 1", "safe replica"},
    {"select 1 /* tusk:primary */", "safe"},
    {"select /* tusk:primary */ 1", "safe"},
    {"select 1; /* tusk:primary */ select 2", "safe n=2"},
    {"/* tusk:primary, app=x */ select 1", "safe"},
    {"/* tusk:replicas */ select 1", "safe"},
    {"/* tusk: replica */ select 1", "safe"},
    {"/* /* tusk:replica */ */ select 1", "safe"},
    {"/* tusk:replica */", "safe replica n=0"},
    {"'/* tusk:replica */'", ""},
    /* ---- statements ---- */
    {"select 1; select 2", "safe n=2"},
    {"select 1;;select 2;;", "safe n=2"},
    {";;;", "safe n=0"},
    {"", "safe n=0"},
    {"   ", "safe n=0"},
    {"-- c", "safe n=0"},
    {"/* c */", "safe n=0"},
    {"select 1; insert into t values (1)", "n=2"},
    {"insert into t values (1); select 1", "n=2"},
    {"select 1; select nextval('s')", "n=2"},
    {"select 1; listen x", "pin n=2"},
    {"select ';'; select 2", "safe n=2"},
    {"select 1 /* ; */; select 2", "safe n=2"},
    {"select $$;$$; select 2", "safe n=2"},
    {"select \";\" from t; select 2", "safe n=2"},
    {"select 1 -- ;\n; select 2", "safe n=2"},
    {"select (1", "unsure"},
    {"select 1)", "unsure"},
    {"select (1; select 2)", "unsure"},
    {"create rule r as on insert to t do instead (insert into u values (1); delete from v)",
     "unsure"},
    /* ---- lexing: strings, quotes, comments, dollar quotes ---- */
    {"select $a$ ; insert $a$", "safe"},
    {"select $a$ $b$ ; insert $b$ $a$", "safe"},
    {"select $a$ ; $a$; insert into t values (1)", "n=2"},
    {"select $$ ; insert $$", "safe"},
    {"select $$$$", "safe"},
    {"select $_$ x $_$", "safe"},
    {"select $a1$ x $a1$", "safe"},
    {"select $A$ x $a$ ; delete from t $A$", "safe"},
    {"select $1, $2", "safe"},
    {"select a$b$ from t", "safe"},
    {"select a$b$; delete from t", "n=2"},
    {"select $a$ unterminated", "unsure"},
    {"select $$ unterminated", "unsure"},
    {"select $ 1", "safe"},
    {"select 'it''s'", "safe"},
    {"select 'it''s; delete from t; --'", "safe"},
    {"select '' ; delete from t", "n=2"},
    {"select 'a'';delete from t;--'", "safe"},
    {"select E'\\''", "safe"},
    {"select E'\\'; delete from t; --'", "safe"},
    {"select e'\\\\'; delete from t", "n=2"},
    {"select E'\\\\''; delete from t; --'", "safe"},
    {"select E'\\\\'''; delete from t", "n=2"},
    {"select 'a\\'; delete from t; --'", "n=2"},
    {"select 'a\\'; delete from t; --'", "@scs safe"},
    {"select N'x', n'it''s'", "safe"},
    {"select N'a\\'; delete from t; --'", "@scs safe"},
    {"select B'1010', X'FF', b'', x''", "safe"},
    {"select U&'\\0041', U&'d\\0061t\\+000061'", "safe"},
    {"select u&'it''s'", "safe"},
    {"select U&'x\\' ; delete from t", "n=2"},
    {"select U&'x' UESCAPE '!'", "safe"},
    {"select \"update\" from t", "safe"},
    {"select \"for update\" from t", "safe"},
    {"select \"a\"\"b\" from t", "safe"},
    {"select \"a\"\" ; delete from t; --\" from t", "safe"},
    {"select \"unterminated", "unsure"},
    {"select 'unterminated", "unsure"},
    {"select e'unterminated\\'", "unsure"},
    {"select /* unterminated", "unsure"},
    {"select /* nested /* comment */ still */ 1", "safe"},
    {"select /* nested /* comment */ 1", "unsure"},
    {"select /* a */ 1 /* b /* c */ d */", "safe"},
    {"select 1 /* ; delete from t; */", "safe"},
    {"select 1 -- ; delete from t", "safe"},
    {"select 1 --\n; delete from t", "n=2"},
    {"select 1 --\r; delete from t", "n=2"},
    {"select 'a'\n'b'", "safe"},
    {"select 'a' -- c\n'b'", "safe"},
    {"select 'a'\n\n  'b'", "safe"},
    {"select E'a'\n'\\' , ' ; delete from t; --'", "n=2"},
    {"select E'a' -- c\n'\\' , ' ; delete from t; --'", "n=2"},
    {"select E'a' /* c */ '\\' , ' ; delete from t; --'", "safe"},
    {"select 'a'\n'\\' , ' ; delete from t; --'", "safe"},
    {"select 'a'\n'\\' , ' ; delete from t; --'", "@scs n=2"},
    {"select B'1'\n'0' ; delete from t", "n=2"},
    /* a two-byte SJIS character whose second byte is '\\' */
    {"select E'\x95\\'; delete from t; --'", "@mb unsure"},
    {"select E'\x95\\'; delete from t; --'", "safe"},
    {"select '\x95\\'; delete from t; --'", "@mb n=2"},
    {"select '\x95\\'; delete from t; --'", "@mb @scs unsure"},
    {"select E'a\\nb'", "@mb safe"},
    {"select 1::int, 'x'::text", "safe"},
    {"select 1 as \"for\"", "safe"},
    {"select \"select\" from \"from\"", "safe"},
    {"select * from t where t.delete", "safe"},
};

/* Parsed expectations of one case. */
typedef struct expect {
    unsigned flags;
    router_class c;
    bool tusk_bad;
} expect;

static void parse_spec(const char *spec, expect *e)
{
    memset(e, 0, sizeof(*e));
    e->c.statements = 1;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", spec);
    for (char *save = NULL, *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        if (strcmp(w, "safe") == 0)
            e->c.replica_safe = true;
        else if (strcmp(w, "begin") == 0)
            e->c.txn_begin = true;
        else if (strcmp(w, "ro") == 0)
            e->c.txn_read_only = true;
        else if (strcmp(w, "rw") == 0)
            e->c.txn_read_write = true;
        else if (strcmp(w, "end") == 0)
            e->c.txn_end = true;
        else if (strncmp(w, "set=", 4) == 0) {
            e->c.sets_session_state = true;
            snprintf(e->c.set_name, sizeof(e->c.set_name), "%s", w + 4);
        } else if (strcmp(w, "reset") == 0)
            e->c.reset_all = true;
        else if (strcmp(w, "dro=on") == 0)
            e->c.default_read_only = ROUTER_SETTING_ON;
        else if (strcmp(w, "dro=off") == 0)
            e->c.default_read_only = ROUTER_SETTING_OFF;
        else if (strcmp(w, "pin") == 0)
            e->c.pins_session = true;
        else if (strcmp(w, "unpin") == 0)
            e->c.unpins_session = true;
        else if (strcmp(w, "primary") == 0)
            e->c.override = ROUTER_OVERRIDE_PRIMARY;
        else if (strcmp(w, "replica") == 0)
            e->c.override = ROUTER_OVERRIDE_REPLICA;
        else if (strncmp(w, "n=", 2) == 0)
            e->c.statements = atoi(w + 2);
        else if (strcmp(w, "tusk=bad") == 0) {
            e->c.tusk_set = ROUTER_TUSK_BAD;
            e->tusk_bad = true;
        } else if (strncmp(w, "tusk=route:", 11) == 0) {
            e->c.tusk_set = ROUTER_TUSK_ROUTE;
            const char *v = w + 11;
            e->c.tusk_route = strcmp(v, "primary") == 0   ? ROUTER_OVERRIDE_PRIMARY
                              : strcmp(v, "replica") == 0 ? ROUTER_OVERRIDE_REPLICA
                                                          : ROUTER_OVERRIDE_NONE;
        } else if (strncmp(w, "tusk=lsn:", 9) == 0) {
            e->c.tusk_set = ROUTER_TUSK_MIN_LSN;
            if (!router_parse_lsn(w + 9, &e->c.tusk_min_lsn))
                fail_msg("bad LSN in spec %s", spec);
        } else if (strcmp(w, "unsure") == 0)
            e->c.uncertain = true;
        else if (strcmp(w, "trunc") == 0)
            e->c.truncated = true;
        else if (strcmp(w, "@scs") == 0)
            e->flags |= ROUTER_FLAG_SCS_OFF;
        else if (strcmp(w, "@sro") == 0)
            e->flags |= ROUTER_FLAG_SESSION_READ_ONLY;
        else if (strcmp(w, "@mb") == 0)
            e->flags |= ROUTER_FLAG_CLIENT_MB_BACKSLASH;
        else
            fail_msg("unknown spec word '%s' in \"%s\"", w, spec);
    }
}

/* Compares every field; returns a description of the first difference, or NULL. */
static const char *compare(const router_class *got, const expect *e, char *why, size_t cap)
{
    const router_class *w = &e->c;
#define CHECK(field, fmt)                                                                          \
    if (got->field != w->field) {                                                                  \
        snprintf(why, cap, #field " is " fmt ", expected " fmt, got->field, w->field);             \
        return why;                                                                                \
    }
    CHECK(replica_safe, "%d");
    CHECK(txn_begin, "%d");
    CHECK(txn_read_only, "%d");
    CHECK(txn_read_write, "%d");
    CHECK(txn_end, "%d");
    CHECK(sets_session_state, "%d");
    CHECK(reset_all, "%d");
    CHECK(default_read_only, "%d");
    CHECK(pins_session, "%d");
    CHECK(unpins_session, "%d");
    CHECK(override, "%d");
    CHECK(statements, "%d");
    CHECK(tusk_set, "%d");
    CHECK(tusk_route, "%d");
    CHECK(uncertain, "%d");
    CHECK(truncated, "%d");
#undef CHECK
    if (got->tusk_min_lsn != w->tusk_min_lsn) {
        snprintf(why, cap, "tusk_min_lsn is %llx, expected %llx",
                 (unsigned long long)got->tusk_min_lsn, (unsigned long long)w->tusk_min_lsn);
        return why;
    }
    if (strcmp(got->set_name, w->set_name) != 0) {
        snprintf(why, cap, "set_name is \"%s\", expected \"%s\"", got->set_name, w->set_name);
        return why;
    }
    if ((got->tusk_error != NULL) != e->tusk_bad) {
        snprintf(why, cap, "tusk_error is %s", got->tusk_error ? got->tusk_error : "NULL");
        return why;
    }
    return NULL;
}

static int setup(void **state)
{
    router_classifier *c = router_classifier_new(EXTRA_UNSAFE);
    if (c == NULL)
        return -1;
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    router_classifier_free(*state);
    return 0;
}

static void test_table(void **state)
{
    const router_classifier *cls = *state;
    size_t failures = 0, n = sizeof(cases) / sizeof(cases[0]);
    for (size_t i = 0; i < n; i++) {
        expect e;
        parse_spec(cases[i].spec, &e);
        router_class got;
        memset(&got, 0xA5, sizeof(got)); /* every field must be written */
        router_classify_ex(cls, cases[i].sql, strlen(cases[i].sql), e.flags, &got);
        char why[200];
        const char *bad = compare(&got, &e, why, sizeof(why));
        if (bad != NULL) {
            print_error("case %zu: \"%s\" [%s]: %s\n", i, cases[i].sql, cases[i].spec, bad);
            failures++;
        }
    }
    print_message("%zu table cases\n", n);
    assert_true(n >= 400);
    assert_int_equal(failures, 0);
}

/* A NUL byte ends the query for the server, and so for the classifier. */
static void test_nul_ends_query(void **state)
{
    const router_classifier *cls = *state;
    static const char sql[] = "select 1\0; delete from t";
    router_class r;
    router_classify(cls, sql, sizeof(sql) - 1, &r);
    assert_true(r.replica_safe);
    assert_int_equal(r.statements, 1);
    router_classify(cls, NULL, 0, &r);
    assert_true(r.replica_safe);
    assert_int_equal(r.statements, 0);
    /* len is honoured: no reading past it */
    router_classify(cls, "select 1; delete from t", 8, &r);
    assert_true(r.replica_safe);
    assert_int_equal(r.statements, 1);
}

/* Past the scan limit the classifier stops, and says so. */
static void test_scan_limit(void **state)
{
    (void)state;
    router_classifier *cls = router_classifier_new(NULL);
    assert_non_null(cls);
    router_classifier_set_scan_limit(cls, 16);
    router_class r;
    router_classify(cls, "select 1", 8, &r);
    assert_true(r.replica_safe);
    assert_false(r.truncated);
    const char *longer = "select 1 from t where a = 'x'";
    router_classify(cls, longer, strlen(longer), &r);
    assert_false(r.replica_safe);
    assert_true(r.truncated);
    assert_true(r.uncertain);
    assert_true(r.pins_session);
    router_classifier_free(cls);

    /* the default limit: a 9 MB read is truncated, a 1 MB one is not */
    cls = router_classifier_new(NULL);
    assert_non_null(cls);
    size_t big = 9u << 20;
    char *sql = malloc(big + 1);
    assert_non_null(sql);
    memcpy(sql, "select ", 7);
    for (size_t i = 7; i < big; i += 2) {
        sql[i] = '1';
        sql[i + 1] = ',';
    }
    sql[big - 1] = '1';
    sql[big] = '\0';
    router_classify(cls, sql, 1u << 20, &r);
    assert_true(r.replica_safe);
    router_classify(cls, sql, big, &r);
    assert_true(r.truncated);
    assert_false(r.replica_safe);
    free(sql);
    router_classifier_free(cls);
}

/* Deeply nested parentheses and comments cost no stack and no memory. */
static void test_deep_nesting(void **state)
{
    const router_classifier *cls = *state;
    size_t depth = 100000;
    char *sql = malloc(2 * depth + 32);
    assert_non_null(sql);
    size_t n = 0;
    n += (size_t)sprintf(sql + n, "select ");
    for (size_t i = 0; i < depth; i++)
        sql[n++] = '(';
    sql[n++] = '1';
    for (size_t i = 0; i < depth; i++)
        sql[n++] = ')';
    router_class r;
    router_classify(cls, sql, n, &r);
    assert_true(r.replica_safe);
    n = 0;
    for (size_t i = 0; i < depth; i++) {
        sql[n++] = '/';
        sql[n++] = '*';
    }
    router_classify(cls, sql, n, &r);
    assert_true(r.uncertain);
    assert_false(r.replica_safe);
    free(sql);
}

/* Every prefix of tricky queries classifies without reading past its end (ASan checks). */
static void test_prefixes(void **state)
{
    const router_classifier *cls = *state;
    size_t n = sizeof(cases) / sizeof(cases[0]);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(cases[i].sql);
        for (size_t k = 0; k <= len; k++) {
            char *copy = malloc(k ? k : 1); /* exact size: ASan sees any over-read */
            assert_non_null(copy);
            memcpy(copy, cases[i].sql, k);
            router_class r;
            router_classify(cls, copy, k, &r);
            if (r.uncertain)
                assert_false(r.replica_safe);
            free(copy);
        }
    }
}

static void test_lsn(void **state)
{
    (void)state;
    uint64_t v = 1;
    assert_true(router_parse_lsn("16/B374D848", &v));
    assert_true(v == ((uint64_t)0x16 << 32 | 0xB374D848u));
    assert_true(router_parse_lsn("0/0", &v));
    assert_true(v == 0);
    assert_true(router_parse_lsn("FFFFFFFF/FFFFFFFF", &v));
    assert_true(v == UINT64_MAX);
    assert_true(router_parse_lsn("0/16b3748", &v));
    assert_true(v == 0x16B3748);
    static const char *const bad[] = {"",    "/",           "1/",   "/1",   "1/2/3", "x/1",
                                      "1/x", "123456789/0", "1 /2", "1/2 ", "-1/2",  "1/-2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(router_parse_lsn(bad[i], &v));
    assert_false(router_parse_lsn(NULL, &v));
    char out[32];
    router_format_lsn((uint64_t)0x16 << 32 | 0xB374D848u, out);
    assert_string_equal(out, "16/B374D848");
    router_format_lsn(0, out);
    assert_string_equal(out, "0/0");
    router_format_lsn(UINT64_MAX, out);
    assert_string_equal(out, "FFFFFFFF/FFFFFFFF");
    for (uint64_t x = 1; x != 0; x = x * 7 + 3) {
        router_format_lsn(x, out);
        assert_true(router_parse_lsn(out, &v));
        assert_true(v == x);
        if (x > (UINT64_MAX / 8))
            break;
    }
}

static void test_function_list(void **state)
{
    (void)state;
    router_classifier *c = router_classifier_new(NULL);
    assert_non_null(c);
    assert_true(router_function_is_unsafe(c, "nextval", 7));
    assert_true(router_function_is_unsafe(c, "NEXTVAL", 7));
    assert_true(router_function_is_unsafe(c, "pg_advisory_anything", 20));
    assert_true(router_function_is_unsafe(c, "dblink", 6));
    assert_false(router_function_is_unsafe(c, "my_writer", 9));
    assert_false(router_function_is_unsafe(c, "lower", 5));
    assert_false(router_function_is_unsafe(c, "", 0));
    router_classifier_free(c);

    c = router_classifier_new("  a ,, \"Quoted\" , s.b_*, x.y.z, \"s.q\".fn  ");
    assert_non_null(c);
    assert_true(router_function_is_unsafe(c, "a", 1));
    assert_true(router_function_is_unsafe(c, "quoted", 6));
    assert_true(router_function_is_unsafe(c, "b_1", 3));
    assert_true(router_function_is_unsafe(c, "B_", 2));
    assert_false(router_function_is_unsafe(c, "b", 1));
    assert_true(router_function_is_unsafe(c, "z", 1));
    assert_true(router_function_is_unsafe(c, "fn", 2));
    assert_false(router_function_is_unsafe(c, "s", 1));
    assert_true(router_function_is_unsafe(c, "nextval", 7));
    router_classifier_free(c);

    assert_non_null(c = router_classifier_new(""));
    router_classifier_free(c);
    static const char *const bad[] = {
        "a b",
        "a*b",
        "*",
        "x.",
        "f()",
        "a;b",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_null(router_classifier_new(bad[i]));
    router_classifier_free(NULL);
}

/* each pin names its kind, and each unpin clears only the kinds it undoes */
static void test_pin_kinds(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        unsigned pins, unpins;
    } kinds[] = {
        {"LISTEN chan", ROUTER_PIN_LISTEN, 0},
        {"UNLISTEN *", 0, ROUTER_PIN_LISTEN},
        {"UNLISTEN chan", 0, 0},
        {"PREPARE p AS SELECT 1", ROUTER_PIN_PREPARE, 0},
        {"DEALLOCATE ALL", 0, ROUTER_PIN_PREPARE},
        {"deallocate prepare all", 0, ROUTER_PIN_PREPARE},
        {"CREATE TEMP TABLE t (x int)", ROUTER_PIN_TEMP, 0},
        {"SELECT 1 INTO TEMP t", ROUTER_PIN_TEMP, 0},
        {"DISCARD TEMP", 0, ROUTER_PIN_TEMP},
        {"SELECT pg_advisory_lock(1)", ROUTER_PIN_ADVISORY, 0},
        {"SELECT pg_advisory_unlock_all()", 0, ROUTER_PIN_ADVISORY},
        {"DECLARE c CURSOR WITH HOLD FOR SELECT 1", ROUTER_PIN_CURSOR, 0},
        {"CLOSE ALL", 0, ROUTER_PIN_CURSOR},
        {"LOAD 'auto_explain'", ROUTER_PIN_LOAD, 0},
        {"SELECT set_config('a.b', 'c', false)", ROUTER_PIN_SETTING, 0},
        {"SET default_transaction_isolation = serializable", ROUTER_PIN_SERIALIZABLE, 0},
        {"SET default_transaction_isolation = 'read committed'", 0, ROUTER_PIN_SERIALIZABLE},
        {"RESET default_transaction_isolation", 0, ROUTER_PIN_SERIALIZABLE},
        {"RESET ALL", 0, ROUTER_PIN_SETTING | ROUTER_PIN_SERIALIZABLE},
        {"DISCARD ALL", 0, ROUTER_PIN_DISCARD_ALL},
        {"LISTEN a; CREATE TEMP TABLE t (x int)", ROUTER_PIN_LISTEN | ROUTER_PIN_TEMP, 0},
        {"UNLISTEN *; DISCARD TEMP", 0, ROUTER_PIN_LISTEN | ROUTER_PIN_TEMP},
        {"SELECT 1", 0, 0},
    };
    router_classifier *cls = router_classifier_new(NULL);
    assert_non_null(cls);
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        router_class r;
        router_classify(cls, kinds[i].sql, strlen(kinds[i].sql), &r);
        if (r.pins != kinds[i].pins || r.unpins != kinds[i].unpins)
            fail_msg("%s: pins %#x unpins %#x, expected %#x %#x", kinds[i].sql, r.pins, r.unpins,
                     kinds[i].pins, kinds[i].unpins);
        assert_int_equal(r.pins_session, kinds[i].pins != 0);
        assert_int_equal(r.unpins_session, kinds[i].unpins != 0);
    }
    assert_false(ROUTER_PIN_DISCARD_ALL & ROUTER_PIN_LOAD);
    assert_true(ROUTER_PIN_DISCARD_ALL & ROUTER_PIN_UNKNOWN);
    router_classifier_free(cls);
}

/* The shape fingerprint leaves out the values of literals and nothing else. */
static void test_fingerprint(void **state)
{
    const router_classifier *cls = *state;
    static const char *same[][2] = {
        {"SELECT abalance FROM pgbench_accounts WHERE aid = 1;",
         "SELECT abalance FROM pgbench_accounts WHERE aid = 98765;"},
        {"select * from t where name = 'a'", "select * from t where name = E'it''s \\n long'"},
        {"select $$x$$, 1.5e3", "select $tag$ y; z $tag$, 7"},
        {"select 1 /* one */", "select   2 -- two\n"},
        {"select * from a_table_with_a_long_name_1 where x = 1",
         "select * from a_table_with_a_long_name_1 where x = 2"},
    };
    static const char *differ[][2] = {
        {"SELECT abalance FROM pgbench_accounts WHERE aid = 1",
         "SELECT abalance FROM pgbench_branches WHERE aid = 1"},
        {"select * from t where a = 1", "select * from t where b = 1"},
        {"select * from t where a = 1", "select * from t where a > 1"},
        {"select * from a_table_with_a_long_name_1", "select * from a_table_with_a_long_name_2"},
        {"select 1", "select '1'"},
        {"select x from t", "select \"x\" from t"},
        {"select pg_sleep(1) as slow", "select pg_sleep(1) as fast"},
    };
    router_class a, b;
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        router_classify_ex(cls, same[i][0], strlen(same[i][0]), ROUTER_FLAG_FINGERPRINT, &a);
        router_classify_ex(cls, same[i][1], strlen(same[i][1]), ROUTER_FLAG_FINGERPRINT, &b);
        if (a.fingerprint != b.fingerprint)
            fail_msg("should share a shape: <%s> <%s>", same[i][0], same[i][1]);
        assert_true(a.fingerprint != 0);
    }
    for (size_t i = 0; i < sizeof(differ) / sizeof(differ[0]); i++) {
        router_classify_ex(cls, differ[i][0], strlen(differ[i][0]), ROUTER_FLAG_FINGERPRINT, &a);
        router_classify_ex(cls, differ[i][1], strlen(differ[i][1]), ROUTER_FLAG_FINGERPRINT, &b);
        if (a.fingerprint == b.fingerprint)
            fail_msg("should differ: <%s> <%s>", differ[i][0], differ[i][1]);
    }
    router_classify_ex(cls, "", 0, ROUTER_FLAG_FINGERPRINT, &a);
    assert_true(a.fingerprint != 0);
    router_classify(cls, "select 1", 8, &a); /* only asked for */
    assert_true(a.fingerprint == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),         cmocka_unit_test(test_nul_ends_query),
        cmocka_unit_test(test_scan_limit),    cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_prefixes),      cmocka_unit_test(test_lsn),
        cmocka_unit_test(test_function_list), cmocka_unit_test(test_pin_kinds),
        cmocka_unit_test(test_fingerprint),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
