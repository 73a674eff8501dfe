DELETE FROM channels WHERE name = $1
