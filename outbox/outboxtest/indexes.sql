-- The indexes of table $1, each as its definition with the index and
-- table names left out: "UNIQUE USING btree (event_id)".
SELECT CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END
       || regexp_replace(pg_get_indexdef(i.indexrelid), '^CREATE (UNIQUE )?INDEX \S+ ON (ONLY )?\S+ ', '')
FROM pg_index i
WHERE i.indrelid = $1::regclass
ORDER BY 1
