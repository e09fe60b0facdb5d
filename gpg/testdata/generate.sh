#!/usr/bin/env bash
# generate.sh regenerates the OpenPGP fixtures in this directory with real GnuPG.
#
# How to regenerate:
#
#     cd gpg/testdata && ./generate.sh
#
# Requirements: GnuPG 2.2 or later (gpg, gpg-agent, gpgconf) and sha256sum.
# The script works in a throw-away GNUPGHOME (mktemp), runs gpg in batch mode
# with --pinentry-mode loopback, and never touches ~/.gnupg.
#
# Key material is random, so every run produces new keys, fingerprints and
# signatures. Tests never hard-code them: they read fixtures.env, which this
# script writes from gpg's own --with-colons output (so the tests also check
# that our parser agrees with GnuPG about fingerprints and key IDs).
#
# Times are frozen with --faked-system-time so that "expired" fixtures are
# expired for any realistic clock and valid fixtures stay valid:
#   2020-01-01  all long-lived keys are created (no expiry)
#   2020-01-01  the expiring key is created with a 1-day lifetime
#   2022-01-01  the expired signature is made with a 1-day lifetime
#   2023-01-01  the soon-to-be-revoked subkey signs, then it is revoked
#   2024-01-01  all valid signatures are made
#
# Outputs (all committed; keep them small):
#   manifest.json, manifest-other.json   two Docker schema2 manifests (digests A and B)
#   payload.json                         simple-signing payload for manifest A (SPEC section 3)
#   payload-name-only.json               same, but identity without tag (fails matchRepoDigestOrExact)
#   payload-duplicate-key.json           same, with a duplicated key in "critical" (must be rejected)
#   <key>.pub.gpg / .pub.asc             public keys, binary and armored
#   <key>.sec.gpg / .sec.asc             secret keys, binary and armored
#   passphrase.txt                       passphrase of the "passphrase" key (no trailing newline)
#   *.sig                                OpenPGP messages, see the table at the end of this script
#   fixtures.env                         NAME=VALUE lines with fingerprints, key IDs and digests
set -euo pipefail

cd "$(dirname "$0")"

GNUPGHOME=$(mktemp -d -t signet-gpg-fixtures.XXXXXX)
export GNUPGHOME
cleanup() {
	gpgconf --kill gpg-agent >/dev/null 2>&1 || true
	rm -rf "$GNUPGHOME"
}
trap cleanup EXIT
# Keep the passphrase-protected export cheap to unlock in tests: the agent's
# calibrated default (tens of millions of S2K bytes) costs ~100 ms per decrypt.
echo 's2k-count 65536' >"$GNUPGHOME/gpg-agent.conf"

readonly T_KEYS='20200101T000000!'
readonly T_EXPIRED_SIG='20220101T000000!'
readonly T_BEFORE_REVOKE='20230101T000000!'
readonly T_REVOKE='20230102T000000!'
readonly T_SIGN='20240101T000000!'
readonly PASSPHRASE='signet-test-passphrase'
readonly IDENTITY='registry.example.com/signet/test:v1'

# gpgp PASSPHRASE ARGS... runs gpg in batch mode, answering any passphrase
# prompt with PASSPHRASE (loopback pinentry, so no agent dialog).
gpgp() {
	local pass=$1
	shift
	gpg --batch --yes --no-tty --quiet --pinentry-mode loopback --passphrase "$pass" "$@"
}

# gpgb runs gpg for keys without a passphrase.
gpgb() {
	gpgp '' "$@"
}

# primary_fpr prints the fingerprint of the primary key matching $1.
primary_fpr() {
	gpg --batch --with-colons --fingerprint "$1" | awk -F: '$1 == "fpr" { print $10; exit }'
}

# last_subkey_fpr prints the fingerprint of the last subkey of $1.
last_subkey_fpr() {
	gpg --batch --with-colons --fingerprint --fingerprint "$1" |
		awk -F: '$1 == "sub" { sub_seen = 1 } $1 == "fpr" && sub_seen { fp = $10 } END { print fp }'
}

# export_keys NAME FPR [PASSPHRASE] writes NAME.{pub,sec}.{gpg,asc}.
# gpg exports a protected secret key still protected by its passphrase.
export_keys() {
	local name=$1 fpr=$2 pass=${3:-}
	gpgp "$pass" --export "$fpr" >"$name.pub.gpg"
	gpgp "$pass" --armor --export "$fpr" >"$name.pub.asc"
	gpgp "$pass" --export-secret-keys "$fpr" >"$name.sec.gpg"
	gpgp "$pass" --armor --export-secret-keys "$fpr" >"$name.sec.asc"
}

# sign_at TIME OUT [gpg options...] signs payload.json unless another input follows the options.
sign_at() {
	local t=$1 out=$2
	shift 2
	gpgb --faked-system-time "$t" --digest-algo SHA256 --output "$out" "$@"
}

rm -f ./*.gpg ./*.asc ./*.sig fixtures.env

# --- manifests and payloads -------------------------------------------------
cat >manifest.json <<'EOF'
{
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
   "config": {
      "mediaType": "application/vnd.docker.container.image.v1+json",
      "size": 1470,
      "digest": "sha256:9f2a1ad5ba4ae0a3bf5e7b6a4c0d7b3ad2d6b3a3cf0b4a9d3ab1f5f6f1c1e0a1"
   },
   "layers": [
      {
         "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
         "size": 2807,
         "digest": "sha256:2f4b5c1c0d5e3b1a8a3b0a9e7a8e1f0d6c9a1b2c3d4e5f60718293a4b5c6d7e8"
      }
   ]
}
EOF
sed 's/"size": 2807/"size": 2808/' manifest.json >manifest-other.json
digest="sha256:$(sha256sum manifest.json | cut -d' ' -f1)"
digest_other="sha256:$(sha256sum manifest-other.json | cut -d' ' -f1)"

# Byte-for-byte the layout containers/image produces (sorted keys, no spaces).
printf '{"critical":{"identity":{"docker-reference":"%s"},"image":{"docker-manifest-digest":"%s"},"type":"atomic container signature"},"optional":{"creator":"signet generate.sh","timestamp":1704067200}}' \
	"$IDENTITY" "$digest" >payload.json
printf '{"critical":{"identity":{"docker-reference":"%s"},"image":{"docker-manifest-digest":"%s"},"type":"atomic container signature"},"optional":{"creator":"signet generate.sh","timestamp":1704067200}}' \
	"${IDENTITY%:*}" "$digest" >payload-name-only.json
printf '{"critical":{"identity":{"docker-reference":"%s"},"image":{"docker-manifest-digest":"%s"},"type":"atomic container signature","type":"atomic container signature"},"optional":{}}' \
	"$IDENTITY" "$digest" >payload-duplicate-key.json
printf '%s' "$PASSPHRASE" >passphrase.txt

# --- keys --------------------------------------------------------------------
# rsa: RSA-3072 primary that signs, plus an encryption subkey for encrypted.sig.
gpgb --faked-system-time "$T_KEYS" --quick-gen-key 'Signet RSA Test <rsa@signet.test>' rsa3072 sign,cert never
rsa=$(primary_fpr rsa@signet.test)
gpgb --faked-system-time "$T_KEYS" --quick-add-key "$rsa" rsa3072 encr never
export_keys rsa "$rsa"

# ed25519: EdDSA primary that signs.
gpgb --faked-system-time "$T_KEYS" --quick-gen-key 'Signet Ed25519 Test <ed25519@signet.test>' ed25519 sign,cert never
ed=$(primary_fpr ed25519@signet.test)
export_keys ed25519 "$ed"

# passphrase: Ed25519 key whose secret export is protected by passphrase.txt.
gpgp "$PASSPHRASE" --faked-system-time "$T_KEYS" \
	--quick-gen-key 'Signet Passphrase Test <passphrase@signet.test>' ed25519 sign,cert never
pp=$(primary_fpr passphrase@signet.test)
export_keys passphrase "$pp" "$PASSPHRASE"

# subkey: certify-only primary with a signing subkey.
gpgb --faked-system-time "$T_KEYS" --quick-gen-key 'Signet Subkey Test <subkey@signet.test>' ed25519 cert never
sk=$(primary_fpr subkey@signet.test)
gpgb --faked-system-time "$T_KEYS" --quick-add-key "$sk" ed25519 sign never
sk_sub=$(last_subkey_fpr "$sk")
export_keys subkey "$sk"

# revoked-subkey: like subkey; the subkey signs once, then it is revoked as compromised.
gpgb --faked-system-time "$T_KEYS" --quick-gen-key 'Signet Revoked Subkey Test <revoked@signet.test>' ed25519 cert never
rv=$(primary_fpr revoked@signet.test)
gpgb --faked-system-time "$T_KEYS" --quick-add-key "$rv" ed25519 sign never
rv_sub=$(last_subkey_fpr "$rv")
sign_at "$T_BEFORE_REVOKE" revoked-subkey.sig --local-user "$rv_sub!" --sign payload.json
# revkey has no --quick variant in GnuPG 2.2; answer the edit-key prompts:
# select subkey 1, revoke, confirm, reason 1 (key compromised), empty text, confirm, save.
printf 'key 1\nrevkey\ny\n1\n\ny\nsave\n' |
	gpgb --faked-system-time "$T_REVOKE" --command-fd 0 --edit-key "$rv" >/dev/null
gpgb --export "$rv" >revoked-subkey.pub.gpg

# expired-key: created with a one-day lifetime, signs on its first day.
gpgb --faked-system-time "$T_KEYS" --quick-gen-key 'Signet Expired Key Test <expired@signet.test>' ed25519 sign,cert 1d
ex=$(primary_fpr expired@signet.test)
sign_at '20200101T010000!' expired-key.sig --local-user "$ex" --sign payload.json
gpgb --export "$ex" >expired-key.pub.gpg

# --- messages ----------------------------------------------------------------
# Valid signed payloads (gpg's default: a ZIP-compressed one-pass signed message).
sign_at "$T_SIGN" rsa.sig --local-user "$rsa" --sign payload.json
sign_at "$T_SIGN" rsa-uncompressed.sig --local-user "$rsa" --compress-algo none --sign payload.json
sign_at "$T_SIGN" rsa-zlib.sig --local-user "$rsa" --compress-algo zlib --sign payload.json
sign_at "$T_SIGN" rsa-bzip2.sig --local-user "$rsa" --compress-algo bzip2 --sign payload.json
sign_at "$T_SIGN" rsa-textmode.sig --local-user "$rsa" --textmode --sign payload.json
sign_at "$T_SIGN" ed25519.sig --local-user "$ed" --sign payload.json
sign_at "$T_SIGN" subkey.sig --local-user "$sk_sub!" --sign payload.json
gpgp "$PASSPHRASE" --faked-system-time "$T_SIGN" --digest-algo SHA256 \
	--output passphrase.sig --local-user "$pp" --sign payload.json
# Validly signed, but rejected later: name-only identity and duplicate JSON key.
sign_at "$T_SIGN" name-only.sig --local-user "$ed" --sign payload-name-only.json
sign_at "$T_SIGN" duplicate-key.sig --local-user "$ed" --sign payload-duplicate-key.json

# Rejected structures and keys.
sign_at "$T_EXPIRED_SIG" expired-signature.sig --local-user "$ed" --default-sig-expire 1d --sign payload.json
sign_at "$T_SIGN" sha1.sig --local-user "$ed" --digest-algo SHA1 --sign payload.json
sign_at "$T_SIGN" two-signatures.sig --local-user "$rsa" --local-user "$ed" --sign payload.json
sign_at "$T_SIGN" armored.sig --local-user "$ed" --armor --sign payload.json
sign_at "$T_SIGN" cleartext.sig --local-user "$ed" --clearsign payload.json
sign_at "$T_SIGN" detached.sig --local-user "$ed" --detach-sign payload.json
# --store alone still wraps the literal in a compressed packet; write both shapes.
gpgb --faked-system-time "$T_SIGN" --output literal.sig --compress-algo none --store payload.json
gpgb --faked-system-time "$T_SIGN" --output literal-compressed.sig --store payload.json
gpgb --faked-system-time "$T_SIGN" --trust-model always --output encrypted.sig --recipient "$rsa" --encrypt payload.json
gpgb --faked-system-time "$T_SIGN" --trust-model always --output signed-encrypted.sig --local-user "$ed" --recipient "$rsa" --sign --encrypt payload.json
gpgp "$PASSPHRASE" --faked-system-time "$T_SIGN" --output symmetric.sig --symmetric payload.json

# --- fixtures.env -------------------------------------------------------------
keyid() { printf '%s' "${1: -16}"; }
{
	echo "# Written by generate.sh; do not edit."
	echo "MANIFEST_DIGEST=$digest"
	echo "MANIFEST_OTHER_DIGEST=$digest_other"
	echo "IDENTITY=$IDENTITY"
	echo "RSA_FPR=$rsa"
	echo "RSA_KEYID=$(keyid "$rsa")"
	echo "ED25519_FPR=$ed"
	echo "ED25519_KEYID=$(keyid "$ed")"
	echo "PASSPHRASE_FPR=$pp"
	echo "PASSPHRASE_KEYID=$(keyid "$pp")"
	echo "SUBKEY_FPR=$sk"
	echo "SUBKEY_KEYID=$(keyid "$sk")"
	echo "SUBKEY_SUB_FPR=$sk_sub"
	echo "SUBKEY_SUB_KEYID=$(keyid "$sk_sub")"
	echo "REVOKED_FPR=$rv"
	echo "REVOKED_SUB_FPR=$rv_sub"
	echo "EXPIRED_FPR=$ex"
} >fixtures.env

ls -l
