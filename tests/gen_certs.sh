#!/usr/bin/env bash
# Test PKI for the fake kube-apiserver (tests/fake_apiserver.py).
#
#   tests/gen_certs.sh OUTDIR
#
# Creates in OUTDIR (idempotent: an existing, consistent set is kept):
#   ca.crt ca.key                 test CA
#   server.crt server.key         signed by ca; SAN IP:127.0.0.1, IP:::1, DNS:localhost
#   client.crt client.key         signed by ca; CN=gpu-extender (clientAuth)
#   other-ca.crt other-ca.key     an unrelated CA (wrong-CA tests)
#   other-client.crt other-client.key   CN=gpu-extender, but signed by other-ca
# Keys are ECDSA P-256 (fast). Set GEN_CERTS_KEY=rsa for RSA-2048 instead.
set -euo pipefail

out=${1:?usage: gen_certs.sh OUTDIR}
days=${GEN_CERTS_DAYS:-3650}
keytype=${GEN_CERTS_KEY:-ec}

mkdir -p "$out"
out=$(cd "$out" && pwd)

files="ca.crt ca.key server.crt server.key client.crt client.key other-ca.crt other-ca.key other-client.crt other-client.key"

complete() {
    local f
    for f in $files; do
        [ -s "$out/$f" ] || return 1
    done
    openssl verify -CAfile "$out/ca.crt" "$out/server.crt" "$out/client.crt" >/dev/null 2>&1 || return 1
    openssl verify -CAfile "$out/other-ca.crt" "$out/other-client.crt" >/dev/null 2>&1 || return 1
    # still valid for at least a day
    openssl x509 -checkend 86400 -noout -in "$out/server.crt" >/dev/null 2>&1 || return 1
}

# Serialise concurrent runs on the same directory.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$out/.gen_certs.lock"
    flock 9
fi

if complete; then
    exit 0
fi

work=$(mktemp -d "$out/.gen.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
umask 077

newkey() { # file
    if [ "$keytype" = rsa ]; then
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null
    else
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
    fi
}

serial() { echo "0x$(openssl rand -hex 8)"; }

mkca() { # name cn
    newkey "$1.key"
    openssl req -x509 -new -key "$1.key" -sha256 -days "$days" -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
        -addext "subjectKeyIdentifier=hash" \
        -set_serial "$(serial)" -out "$1.crt" 2>/dev/null
}

mkleaf() { # name ca subj extfile-content
    newkey "$1.key"
    openssl req -new -key "$1.key" -subj "$3" -out "$1.csr" 2>/dev/null
    printf '%s\n' "$4" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -set_serial "$(serial)" \
        -days "$days" -sha256 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

mkca ca "fake-kube-apiserver-ca"
mkca other-ca "unrelated-test-ca"
mkleaf server ca "/CN=kube-apiserver" \
"basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost,DNS:kubernetes.default.svc"
mkleaf client ca "/CN=gpu-extender" \
"basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
mkleaf other-client other-ca "/CN=gpu-extender" \
"basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"

chmod 600 ./*.key
chmod 644 ./*.crt
for f in $files; do
    mv -f "$f" "$out/$f"
done
