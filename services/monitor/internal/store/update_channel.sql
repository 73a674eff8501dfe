UPDATE channels SET kind = $2, url = $3, secret = $4, is_default = $5 WHERE name = $1
