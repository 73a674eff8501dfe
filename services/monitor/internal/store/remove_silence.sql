DELETE FROM silences WHERE id = $1
