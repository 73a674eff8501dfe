-- Deletes up to $3 rollups of width $1 (seconds) whose bucket started
-- before $2: small batches, each its own short transaction, so expiry
-- never holds many locks nor makes a burst of dead rows. A minute not
-- folded into its hour and day yet (package rollup) stays: readers still
-- add it to them.
DELETE FROM rollups WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM rollups WHERE bucket_width = $1 AND bucket_start < $2
        AND ($1 <> 60 OR bucket_start < coalesce((SELECT folded_to FROM rollup_fold), 'infinity'))
    LIMIT $3))
