-- The first minute not folded into the 1-hour and 1-day rollups; NULL
-- while folding has not started.
SELECT folded_to FROM rollup_fold
