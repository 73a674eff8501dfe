#!/usr/bin/env bash
# Throw-away certificates with openssl, for the `secure` compose profile and for trying TLS locally:
#   tls.sh DIR [HOST...]   CA (ca.pem), broker certificate for HOST... (default: kafka-secure localhost)
#                          as broker.crt/broker.key (and both as kafka_broker_keystore, the secure
#                          broker's compose secret), a client certificate client.crt/client.key,
#                          a random SASL password (kafka_sasl_password, unless scripts/secrets.sh made it)
#                          and DIR/secure.env for `docker compose --env-file`, with the CA as one line
#                          of literal \n and no secret: the password is the compose secret kafka_sasl_password.
# Keys are unencrypted PKCS#8, mode 0600. Existing files are kept: delete DIR to start over.
# (The Go tests make theirs with platform/tlstest, the same openssl calls.)
set -euo pipefail
# shellcheck source=scripts/lib.sh source-path=SCRIPTDIR/..
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -ge 1 ]] || { echo "usage: $0 DIR [HOST...]" >&2; exit 2; }
DIR=$1
shift
HOSTS=("$@")
((${#HOSTS[@]})) || HOSTS=(kafka-secure localhost)
need openssl openssl
mkdir -p "$DIR"
umask 077
LOG=$DIR/openssl.log
EC=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -noenc)

ssl() { openssl "$@" >>"$LOG" 2>&1 || die "openssl $1 failed" "$LOG"; }

# sign NAME USAGE [SAN]: NAME.crt/NAME.key signed by the CA.
sign() {
  local -a ext=(-addext basicConstraints=critical,CA:FALSE -addext keyUsage=critical,digitalSignature,keyEncipherment -addext "extendedKeyUsage=$2")
  [[ -z ${3:-} ]] || ext+=(-addext "subjectAltName=$3")
  [[ -s $DIR/$1.crt ]] || ssl req -x509 -CA "$DIR/ca.pem" -CAkey "$DIR/ca.key" "${EC[@]}" -keyout "$DIR/$1.key" \
    -out "$DIR/$1.crt" -days 825 -subj "/CN=$1" "${ext[@]}"
}

[[ -s $DIR/ca.pem ]] || ssl req -x509 "${EC[@]}" -keyout "$DIR/ca.key" -out "$DIR/ca.pem" -days 825 \
  -subj /CN=sitewatch-local-ca -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
san=
for h in "${HOSTS[@]}"; do
  if [[ $h =~ ^[0-9.]+$ || $h == *:* ]]; then san+=${san:+,}IP:$h; else san+=${san:+,}DNS:$h; fi
done
sign broker serverAuth "$san"
sign client clientAuth
[[ -s $DIR/kafka_sasl_password ]] || openssl rand -hex 24 | tr -d '\n' >"$DIR/kafka_sasl_password"
cat "$DIR/broker.key" "$DIR/broker.crt" >"$DIR/kafka_broker_keystore"
# The containers run as other users (kafka: appuser): let them read what they mount.
chmod 0644 "$DIR/ca.pem" "$DIR/kafka_broker_keystore" "$DIR/kafka_sasl_password"

# One-line PEM, as a platform's secret store holds it: literal \n between lines.
ca_line=$(awk '{printf "%s\\n", $0}' "$DIR/ca.pem")
cat >"$DIR/secure.env" <<ENV
# made by scripts/tls.sh; docker compose -f deploy/docker-compose.yml --profile secure --env-file $DIR/secure.env up -d
SITEWATCH_KAFKA_BROKERS=kafka-secure:9094
KAFKA_SECURITY_PROTOCOL=sasl_ssl
KAFKA_SASL_MECHANISM=SCRAM-SHA-512
KAFKA_SASL_USERNAME=sitewatch
KAFKA_SASL_PASSWORD_FILE=/run/secrets/kafka_sasl_password
KAFKA_CA_PEM=$ca_line
SITEWATCH_SECRETS_DIR=$(cd "$DIR" && pwd)
ENV
echo "certificates and $DIR/secure.env written" >&2
