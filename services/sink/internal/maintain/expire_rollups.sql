-- Deletes up to $3 rollups of width $1 (seconds) whose bucket started
-- before $2: small batches, each its own short transaction, so expiry
-- never holds many locks nor makes a burst of dead rows.
DELETE FROM rollups WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM rollups WHERE bucket_width = $1 AND bucket_start < $2 LIMIT $3))
