-- The latest $2 checks of site $1, with what their kind reports.
SELECT checked_at, coalesce(region, ''), status_code, duration_ms, coalesce(error_class, ''), coalesce(error, ''),
       coalesce(kind, 'http'), coalesce(tls_version, ''), coalesce(tls_cipher, ''), coalesce(dns_rcode, ''), dns_answers,
       icmp_sent, icmp_received, rtt_avg_ms, coalesce(degraded, '')
FROM stats
WHERE site_id = $1 AND checked_at > now() - interval '30 days'
ORDER BY checked_at DESC
LIMIT $2
