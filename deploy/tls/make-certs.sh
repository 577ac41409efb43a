#!/usr/bin/env bash
# make-certs.sh — a private CA and the certificates for a mutually authenticated Dask
# cluster: one for the scheduler, one for the workers, one for clients (blockdist).
#
#   usage: make-certs.sh [-f] [-d DAYS] OUTDIR [SAN ...]
#
#   OUTDIR   folder to write into (created with mode 0700 if missing)
#   SAN      extra subjectAltName entries for the certificates (names a peer dials):
#            DNS:scheduler, IP:10.0.0.5, or a bare name / IPv4 / IPv6 address
#   -d DAYS  validity of every certificate (default 365)
#   -f       overwrite certificates and keys already in OUTDIR (the CA too)
#
# Every certificate carries IP:127.0.0.1, IP:::1 and DNS:localhost, plus the extra SANs.
# Written files (keys mode 0600, certificates 0644):
#
#   ca.pem          CA certificate: give it to every scheduler, worker and client
#   ca-key.pem      CA private key: keep it OFF the cluster; it signs new certificates
#   scheduler.pem   scheduler-key.pem
#   worker.pem      worker-key.pem
#   client.pem      client-key.pem
#
# Keys are ECDSA P-256; certificates carry serverAuth and clientAuth, because a Dask
# worker both listens and connects, and so does the scheduler. Needs openssl >= 1.1.1.
set -euo pipefail

usage() {
    sed -n '4,12s/^# \{0,1\}//p' "$0" >&2
    exit "${1:-2}"
}

die() {
    echo "make-certs.sh: $*" >&2
    exit 1
}

days=365
force=0
while getopts ":fd:h" opt; do
    case "$opt" in
        f) force=1 ;;
        d) days=$OPTARG ;;
        h) usage 0 ;;
        :) die "option -$OPTARG needs a value" ;;
        *) die "unknown option -$OPTARG (see -h)" ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
outdir=$1
shift

case "$days" in
    '' | *[!0-9]*) die "-d DAYS must be a positive whole number, not '$days'" ;;
esac
[ "$days" -gt 0 ] || die "-d DAYS must be a positive whole number, not '$days'"
command -v openssl >/dev/null 2>&1 || die "openssl not found on PATH"

# subjectAltName: the loopback names every certificate carries, then the extra ones.
san="IP:127.0.0.1,IP:::1,DNS:localhost"
for entry in "$@"; do
    case "$entry" in
        DNS:?* | IP:?*) ;;
        *:*:*) entry="IP:$entry" ;;                   # IPv6
        *[!0-9.]*) entry="DNS:$entry" ;;              # has a character no IPv4 has
        *.*.*.*) entry="IP:$entry" ;;                 # IPv4
        *) die "cannot tell whether '$entry' is a DNS name or an IP address; write DNS:$entry or IP:$entry" ;;
    esac
    case "$entry" in
        *[,\ ]*) die "subjectAltName entry '$entry' must not contain a comma or a space" ;;
    esac
    san="$san,$entry"
done

files="ca.pem ca-key.pem scheduler.pem scheduler-key.pem worker.pem worker-key.pem client.pem client-key.pem"
if [ -d "$outdir" ] && [ "$force" -eq 0 ]; then
    for f in $files; do
        [ ! -e "$outdir/$f" ] || die "$outdir/$f exists; use -f to overwrite, or another folder"
    done
fi
if [ ! -d "$outdir" ]; then
    mkdir -p "$outdir"
    chmod 0700 "$outdir"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077

newkey() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null \
        || die "openssl could not make an EC P-256 key"
}

# The CA: self-signed, may sign end-entity certificates only (pathlen 0).
cat >"$work/ca.ext" <<'EOF'
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
newkey "$work/ca-key.pem"
openssl req -new -key "$work/ca-key.pem" -subj "/O=blockdist/CN=blockdist Dask cluster CA" \
    -out "$work/ca.csr"
openssl x509 -req -in "$work/ca.csr" -signkey "$work/ca-key.pem" -days "$days" -sha256 \
    -set_serial "0x$(openssl rand -hex 16)" -extfile "$work/ca.ext" -out "$work/ca.pem" \
    2>/dev/null || die "openssl could not sign the CA certificate"

for role in scheduler worker client; do
    cat >"$work/$role.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF
    newkey "$work/$role-key.pem"
    openssl req -new -key "$work/$role-key.pem" -subj "/O=blockdist/CN=dask-$role" \
        -out "$work/$role.csr"
    openssl x509 -req -in "$work/$role.csr" -CA "$work/ca.pem" -CAkey "$work/ca-key.pem" \
        -days "$days" -sha256 -set_serial "0x$(openssl rand -hex 16)" \
        -extfile "$work/$role.ext" -out "$work/$role.pem" 2>/dev/null \
        || die "openssl could not sign the $role certificate"
    openssl verify -CAfile "$work/ca.pem" "$work/$role.pem" >/dev/null \
        || die "the $role certificate does not verify against the new CA"
done

for f in $files; do
    case "$f" in
        *-key.pem) chmod 0600 "$work/$f" ;;
        *) chmod 0644 "$work/$f" ;;
    esac
    mv -f "$work/$f" "$outdir/$f"
done

echo "make-certs.sh: wrote CA, scheduler, worker and client certificates to $outdir"
echo "make-certs.sh: subjectAltName: $san; valid for $days days"
echo "make-certs.sh: keep $outdir/ca-key.pem off the cluster"
