#!/bin/sh
# Makes the secrets docker/compose.yaml mounts, with openssl, into docker/secrets/ (gitignored;
# or into the directory given as the first argument):
#
#   ca.crt, ca.key                 a private CA (ca.key is never mounted anywhere)
#   scimtrail.crt, scimtrail.key   scimtrail's server certificate: DNS localhost, scimtrail-1,
#                                  scimtrail-2, IP 127.0.0.1 (the IdP side, through haproxy)
#   app-tls.crt, app-tls.key       nginx's server certificate for the name app-tls
#   client.crt, client.key         the client certificate scimtrail presents to app-tls (mTLS)
#   idp_token, admin_token         random bearer tokens: the IdP's, the admin API's and UI's
#   postgres_password              PostgreSQL's password (the postgres image's, at its first start)
#   store_url                      the instances' store URL ([store] url_file), with that password:
#                                  postgres://scimtrail:PASSWORD@postgres:5432/scimtrail
#   fingerprint_key                the key both instances record credentials' HMACs under
#
# Permissions. Compose (without Swarm) gives a file secret to a container as a bind mount of
# the file itself: the container sees the host file's owner and mode, and the uid/gid/mode of
# the long syntax are not applied. The containers read them as different users: scimtrail as
# 10001, postgres as 999, nginx's master as root. So, for this demo, the files are 0644 and
# the directory holding them 0700: no other user of this host can reach them, and each
# container sees only the files mounted into it. For anything beyond a demo, give each file
# to the uid that reads it (as root: chown 10001:10001 scimtrail.key …; chmod 0600) or use an
# orchestrator whose secrets have owners (Swarm, Kubernetes).
#
# Runs once: it refuses to overwrite an existing CA (remove the directory to start again).
set -eu

dir="${1:-$(dirname "$0")/secrets}"
days_ca=825
days_leaf=397

if [ -e "$dir/ca.crt" ]; then
  echo "make-secrets: $dir/ca.crt exists; remove $dir to make new secrets" >&2
  exit 1
fi
command -v openssl >/dev/null 2>&1 || { echo "make-secrets: openssl is needed" >&2; exit 1; }

umask 077
mkdir -p "$dir"
chmod 0700 "$dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT INT TERM

key() { # key FILE: an ECDSA P-256 private key, PKCS#8 PEM (rustls and nginx both read it)
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

# leaf NAME SUBJECT EXTENDED_KEY_USAGE [SUBJECT_ALT_NAME]: a certificate signed by the CA.
leaf() {
  key "$dir/$1.key"
  {
    echo "basicConstraints = critical, CA:FALSE"
    echo "keyUsage = critical, digitalSignature"
    echo "extendedKeyUsage = $3"
    echo "subjectKeyIdentifier = hash"
    echo "authorityKeyIdentifier = keyid:always"
    if [ -n "${4:-}" ]; then echo "subjectAltName = $4"; fi
  } >"$work/$1.ext"
  openssl req -new -key "$dir/$1.key" -subj "$2" -out "$work/$1.csr"
  openssl x509 -req -in "$work/$1.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -CAcreateserial -CAserial "$work/ca.srl" -days "$days_leaf" -sha256 \
    -extfile "$work/$1.ext" -out "$dir/$1.crt" 2>/dev/null
}

# token FILE BYTES: random hex, no trailing newline.
token() {
  openssl rand -hex "$2" | tr -d '\n' >"$dir/$1"
}

key "$dir/ca.key"
openssl req -x509 -new -key "$dir/ca.key" -sha256 -days "$days_ca" \
  -subj "/CN=scimtrail demo private CA" \
  -addext "basicConstraints = critical, CA:TRUE, pathlen:0" \
  -addext "keyUsage = critical, keyCertSign, cRLSign" \
  -addext "subjectKeyIdentifier = hash" \
  -out "$dir/ca.crt"

leaf scimtrail "/CN=scimtrail" serverAuth \
  "DNS:localhost, DNS:scimtrail-1, DNS:scimtrail-2, IP:127.0.0.1"
leaf app-tls "/CN=app-tls" serverAuth "DNS:app-tls"
leaf client "/CN=scimtrail" clientAuth

token idp_token 32
token admin_token 32
token postgres_password 24
token fingerprint_key 32
# The store URL the instances read ([store] url_file in scimtrail.toml): the password is only
# here and in postgres_password. Hex: nothing in it needs percent-encoding in a URL.
printf 'postgres://scimtrail:%s@postgres:5432/scimtrail' "$(cat "$dir/postgres_password")" >"$dir/store_url"

# Everything the containers read: readable by their users (see above). The CA's key stays 0600.
for file in ca.crt scimtrail.crt scimtrail.key app-tls.crt app-tls.key client.crt client.key \
  idp_token admin_token postgres_password store_url fingerprint_key; do
  chmod 0644 "$dir/$file"
done
chmod 0600 "$dir/ca.key"

for cert in scimtrail app-tls client; do
  openssl verify -CAfile "$dir/ca.crt" "$dir/$cert.crt" >/dev/null
done
echo "make-secrets: secrets in $dir (CA: $dir/ca.crt)"
