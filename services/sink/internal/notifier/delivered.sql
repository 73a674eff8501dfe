UPDATE deliveries SET status = 'delivered', delivered_at = now(), attempts = attempts + 1, last_error = NULL
WHERE id = $1
