-- Moves the first minute not folded to $1.
UPDATE rollup_fold SET folded_to = $1
