-- Run once on the primary after pgbench -i (it replicates to the standbys): the function
-- mixed.sql calls when a read-back does not see the value the same client just wrote. It
-- raises serialization_failure (40001) on purpose: pgbench 15 counts that SQLSTATE as a
-- failed transaction and goes on, where any other error would abort the client.
CREATE OR REPLACE FUNCTION tusk_bench_stale(aid integer, want integer, got integer)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'stale read: aid % wrote % read %', aid, want, got
        USING ERRCODE = 'serialization_failure';
END
$$;
