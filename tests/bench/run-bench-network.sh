#!/bin/bash
# SPDX-License-Identifier: MIT
# Start a tokend with the [Network] HTTPS listener on 127.0.0.1 (certificate
# from a throwaway CA made with openssl here) and a throwaway PAM service
# that permits every password (pam_permit: login then measures tokend, not a
# password hash), run tests/bench/bench-network against its socket and its
# HTTPS port, stop it, remove everything. Root (the PAM service lives in
# /etc/pam.d). Run from the build directory (or set BUILDDIR):
#   tests/bench/run-bench-network.sh [--seconds S]
set -euo pipefail

builddir=${BUILDDIR:-.}
tokend=$builddir/tokend
bench=$builddir/tests/bench/bench-network
for f in "$tokend" "$bench"; do
        [[ -x $f ]] || { echo "run-bench-network: $f not built (run make, or set BUILDDIR)" >&2; exit 2; }
done
[[ $(id -u) -eq 0 ]] || { echo "run-bench-network: needs root (a PAM service in /etc/pam.d)" >&2; exit 2; }

state=$(mktemp -d /var/tmp/bench-network.XXXXXX)
service=tokend-bench-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
pid=
cleanup() {
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
                kill -TERM "$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
        fi
        rm -f "/etc/pam.d/$service"
        rm -rf "$state"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

printf 'auth required pam_permit.so\naccount required pam_permit.so\n' >"/etc/pam.d/$service"
cd "$state"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 1 \
        -subj "/CN=bench CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key -out srv.csr \
        -subj "/CN=127.0.0.1" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >ext
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 1 -extfile ext 2>/dev/null
chmod 600 srv.key
cd - >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$state/tokend.conf" <<CONF
[Login]
PAMService=$service
MaxDevicesPerUser=1000000
PeerLoginRate=1000000
[Network]
Listen=127.0.0.1:$port
Certificate=$state/srv.pem
PrivateKey=$state/srv.key
CONF
"$tokend" --config "$state/tokend.conf" --state-dir "$state/st" --socket "$state/tokend.sock" --bus none \
        >>"$state/tokend.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
        [[ -S $state/tokend.sock ]] && break
        kill -0 "$pid" 2>/dev/null || { cat "$state/tokend.log" >&2; exit 1; }
        sleep 0.1
done
echo "tokend $($tokend --version 2>/dev/null | head -1), $(nproc) cores; one client, sequential requests"
"$bench" --socket "$state/tokend.sock" --url "https://127.0.0.1:$port" --ca-file "$state/ca.pem" "$@"
