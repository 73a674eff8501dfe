-- +goose Up
-- Check kinds beyond HTTP (the URL's scheme says which: http(s), tcp, tls,
-- dns, grpc(s), icmp).
-- sites.send: what a tcp:// or tls:// check writes once connected ('' for
-- nothing), at most 4096 bytes of text.
ALTER TABLE sites ADD COLUMN send text NOT NULL DEFAULT ''
    CONSTRAINT sites_send_valid CHECK (octet_length(send) <= 4096);
-- What the checks of the new kinds report (check event schema version 4):
-- the kind (NULL for http, as every earlier row); of a TLS handshake its
-- protocol version, cipher suite and whether the server stapled an OCSP
-- response (https checks fill these too); of a DNS query the response code
-- and the answers of the type asked (a JSON array of strings, as dig prints
-- their data).
ALTER TABLE stats
    ADD COLUMN kind text,
    ADD COLUMN tls_version text,
    ADD COLUMN tls_cipher text,
    ADD COLUMN ocsp_stapled boolean,
    ADD COLUMN dns_rcode text,
    ADD COLUMN dns_answers jsonb,
    -- icmp: echo requests sent, replies received, their round trips
    ADD COLUMN icmp_sent integer,
    ADD COLUMN icmp_received integer,
    ADD COLUMN rtt_min_ms double precision,
    ADD COLUMN rtt_avg_ms double precision,
    ADD COLUMN rtt_max_ms double precision;

-- +goose Down
ALTER TABLE stats
    DROP COLUMN rtt_max_ms,
    DROP COLUMN rtt_avg_ms,
    DROP COLUMN rtt_min_ms,
    DROP COLUMN icmp_received,
    DROP COLUMN icmp_sent,
    DROP COLUMN dns_answers,
    DROP COLUMN dns_rcode,
    DROP COLUMN ocsp_stapled,
    DROP COLUMN tls_cipher,
    DROP COLUMN tls_version,
    DROP COLUMN kind;
ALTER TABLE sites DROP COLUMN send;
