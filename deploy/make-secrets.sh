#!/bin/sh
# Write the secrets deploy/compose.yaml reads, readable by their owner only:
#   deploy/secrets/postgres.env   POSTGRES_PASSWORD
#   deploy/secrets/authsvc.env    AUTHSVC_DATABASE_URL (with that password) and
#                                 AUTHSVC_KEY_ENCRYPTION_KEY (32 random bytes, base64url)
# An existing file is never overwritten: PostgreSQL keeps the password it was first started with,
# and without its encryption key the key ring in the database cannot be read. Back both up.
set -eu

dir="$(dirname "$0")/secrets"
umask 077
mkdir -p "$dir"

random() {
    # 32 random bytes, base64url without padding: secrets.token_urlsafe(32).
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import secrets; print(secrets.token_urlsafe(32))'
    else
        openssl rand -base64 32 | tr '+/' '-_' | tr -d '=\n'
        echo
    fi
}

if [ -e "$dir/postgres.env" ] || [ -e "$dir/authsvc.env" ]; then
    echo "make-secrets: $dir already holds secrets; not overwriting them" >&2
    exit 1
fi

password=$(random)
printf 'POSTGRES_PASSWORD=%s\n' "$password" >"$dir/postgres.env"
printf 'AUTHSVC_DATABASE_URL=postgresql+psycopg://authsvc:%s@postgres:5432/authsvc\nAUTHSVC_KEY_ENCRYPTION_KEY=%s\n' \
    "$password" "$(random)" >"$dir/authsvc.env"
echo "make-secrets: wrote $dir/postgres.env and $dir/authsvc.env (keep a copy of the encryption key)"
