-- pgbench script for the routed "mixed" run: 90% of transactions read one account, 10%
-- write one and read it back at once, autocommit, so a router must send that read to a
-- node that has replayed the write (read-your-writes).
--   pgbench -n -f bench/routed/mixed.sql -c 32 -j 2 -T 10 --failures-detailed bench
-- Needs bench/routed/mixed-setup.sql loaded once. A stale read-back calls
-- tusk_bench_stale(), which fails with SQLSTATE 40001: pgbench counts it under "number of
-- failed transactions" / "number of serialization failures" and the client keeps going,
-- so zero failed transactions = zero stale reads.
--
-- Each client writes only aids congruent to its client_id + 1 modulo 1000, so no other
-- client can overwrite a row between the write and the read-back (up to 1000 clients).
-- The written value is random in 1..2e9: a stale read returns the row's previous value,
-- which equals the new one with probability 5e-10.
\set r random(1, 100)
\if :r <= 10
\set aid :client_id % 1000 + 1 + 1000 * random(0, 100 * :scale - 1)
\set want random(1, 2000000000)
UPDATE pgbench_accounts SET abalance = :want WHERE aid = :aid;
SELECT abalance AS got FROM pgbench_accounts WHERE aid = :aid \gset
\if :got != :want
SELECT tusk_bench_stale(:aid, :want, :got);
\endif
\else
\set aid random(1, 100000 * :scale)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
\endif
