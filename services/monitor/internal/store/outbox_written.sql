-- Which of these event ids the outbox holds already: a batch written again
-- after an attempt whose commit went through unanswered.
SELECT event_id::text FROM outbox WHERE event_id = ANY($1::uuid[])
